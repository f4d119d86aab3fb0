"""The ``spravka`` command line as a user runs it (a real subprocess, the fast embedder)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "spravka", "--data-dir", str(home), "--embedder", "use", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    h = tmp_path_factory.mktemp("cli-home")
    report = json.loads(run(h, "ingest", str(ROOT / "samples" / "kb"), "--json").stdout)
    assert report["failed"] == 0 and report["added"] == 42 and report["chunks"] > 100
    return h


def test_reingest_reports_everything_unchanged(home):
    report = json.loads(run(home, "ingest", str(ROOT / "samples" / "kb"), "--json").stdout)
    assert report["unchanged"] == 42 and report["added"] == report["updated"] == report["embedded"] == 0


def test_search_json(home):
    out = json.loads(run(home, "search", "как вернуть товар", "--json", "-k", "3").stdout)
    assert len(out["hits"]) == 3 and out["hits"][0]["doc_id"].startswith("customers/")
    assert {"chunk_id", "doc_id", "text", "score", "signals", "metadata", "access_groups"} <= set(out["hits"][0])


def test_search_with_filters_and_groups(home):
    out = json.loads(run(home, "search", "отпуск", "--filter", "department=hr", "--groups", "employees", "--json").stdout)
    assert out["hits"] and all(h["metadata"]["department"] == "hr" for h in out["hits"])
    assert all("managers" not in h["access_groups"] or "employees" in h["access_groups"] for h in out["hits"])


def test_search_renders_a_table(home):
    out = run(home, "search", "подарочный сертификат").stdout
    assert "gift-certificates.md" in out


def test_docs_and_collections(home):
    docs = json.loads(run(home, "docs", "--json").stdout)
    assert len(docs) == 42 and all(d["status"] == "ok" for d in docs)
    cols = json.loads(run(home, "collections", "--json").stdout)
    assert cols[0]["name"] == "default" and cols[0]["documents"] == 42
    assert "default: 42 documents" in run(home, "docs").stdout


def test_eval_retrieval_json(home):
    out = json.loads(run(home, "eval", "retrieval", "--golden", str(ROOT / "samples/golden/kb.jsonl"), "--json").stdout)
    for key in ("n", "hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "p50_ms", "p95_ms"):
        assert key in out
    assert out["n"] == 56 and out["hit@5"] >= 0.8


def test_clear_errors_and_exit_codes(home, tmp_path):
    p = run(home, "ingest", str(tmp_path / "missing"), check=False)
    assert p.returncode == 2 and "path not found" in p.stderr and "Traceback" not in p.stderr
    p = run(home, "search", "возврат", "--filter", "department", check=False)
    assert p.returncode == 2 and "cannot parse filter" in p.stderr
    p = run(home, "search", "возврат", "--collection", "nope", check=False)
    assert p.returncode == 2 and "does not exist" in p.stderr
    p = run(home, "eval", "retrieval", "--golden", str(tmp_path / "none.jsonl"), check=False)
    assert p.returncode == 2 and "golden set not found" in p.stderr


def test_a_collection_built_with_another_embedder_is_not_searched_blindly(home):
    cmd = [sys.executable, "-m", "spravka", "--data-dir", str(home), "search", "возврат"]  # default e5
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 1 and "was indexed with" in p.stderr
