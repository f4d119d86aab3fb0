"""``spravka migrate``: embedded → PostgreSQL and embedded → Milvus without re-embedding,
resumable after an interruption, a no-op when re-run, and the same answers afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conformance.conftest import fresh_pg, milvus_client, pg_server  # noqa: F401  (fixtures)

from spravka.app import Spravka
from spravka.core.settings import Settings
from spravka.store.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "как вернуть товар",
    "сколько стоит доставка во Владивосток",
    "как сбросить пароль от учётки",
    "сколько дней отпуска положено",
]


@pytest.fixture(scope="module")
def source(tmp_path_factory, sample_kb):
    home = tmp_path_factory.mktemp("migrate-src")
    app = Spravka(Settings(home=home, embedder={"provider": "use"}))
    app.ingest(sample_kb, "default")
    app.ingestor.ingest_documents([], "empty")  # a collection with no documents copies too
    yield app
    app.close()


def top(app: Spravka, q: str) -> list[str]:
    return [h.doc_id for h in app.search(q, k=5).hits]


class Interrupt(Exception):
    pass


class StopAfter:
    def __init__(self, n: int) -> None:
        self.n = n

    def vectors(self, n: int) -> None:
        pass

    def collection(self, name: str, documents: int) -> None:
        pass

    def document(self, doc_id: str, chunks: int, copied: bool) -> None:
        self.n -= 1
        if self.n == 0:
            raise Interrupt


@pytest.mark.backend
def test_embedded_to_postgres_is_resumable_and_faithful(source, fresh_pg, tmp_path):  # noqa: F811
    url, drop = fresh_pg()
    target = Spravka(Settings(home=tmp_path, embedder={"provider": "use"}, store={"url": url}))
    try:
        with pytest.raises(Interrupt):
            migrate(source.store, source.index, target.store, target.index, progress=StopAfter(10))
        report = migrate(source.store, source.index, target.store, target.index)
        n_docs = len(source.store.list_documents("default"))
        assert report.documents == n_docs and report.skipped == 10 and report.copied == n_docs - 10
        assert target.index.count("default") == source.index.count("default")
        assert {c["name"] for c in target.store.list_collections()} == {"default", "empty"}
        assert [s.path for s in target.store.list_sources("default")] == [
            s.path for s in source.store.list_sources("default")
        ]
        cached = source.store.db.query("SELECT count(*) FROM embeddings")[0][0]
        assert target.store.db.query("SELECT count(*) FROM embeddings")[0][0] == cached
        again = migrate(source.store, source.index, target.store, target.index)
        assert again.copied == 0 and again.skipped == n_docs
        for q in QUESTIONS:
            assert top(target, q)[:3] == top(source, q)[:3], q
        # the migrated store keeps working incrementally: nothing to embed or re-index
        report = target.ingest(ROOT / "samples" / "kb", "default")
        assert report.embedded == 0 and report.added == report.updated == 0
    finally:
        target.close()
        drop()


@pytest.mark.backend
def test_cli_migrates_the_data_directory_into_milvus(source, milvus_client, tmp_path):  # noqa: F811
    home = Path(source.settings.home)
    url = "milvus://" + str(tmp_path / "kb-milvus.db")
    cmd = [
        sys.executable,
        "-m",
        "spravka",
        "--data-dir",
        str(home),
        "--embedder",
        "use",
        "migrate",
        "--to",
        url,
        "--json",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["copied"] == report["documents"] > 40 and report["chunks"] == source.index.count("default")
    assert report["vectors"] == 0  # same data directory: documents and cache are already there
    target = Spravka(Settings(home=home, embedder={"provider": "use"}, store={"url": url}))
    try:
        assert target.index.count("default") == source.index.count("default")
        for q in QUESTIONS:
            assert top(source, q)[0] in top(target, q)[:3], q
    finally:
        target.close()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["copied"] == 0
