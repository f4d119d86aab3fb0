"""``spravka keys`` and ``spravka serve --demo`` as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

import httpx  # noqa: E402

from spravka.api.server import free_port  # noqa: E402
from spravka.app import Spravka  # noqa: E402
from spravka.core.settings import Settings  # noqa: E402
from spravka.core.types import Document, Section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def spravka(home: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "spravka", "--data-dir", str(home), "--embedder", "use", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_keys_create_list_revoke(tmp_path):
    home = tmp_path / "home"
    p = spravka(home, "keys", "create", "--name", "site", "--role", "user", "--groups", "public, HR")
    assert p.returncode == 0, p.stderr
    key = p.stdout.strip()
    assert key.startswith("spk_") and len(p.stdout.strip().splitlines()) == 1  # only the key on stdout
    assert "not shown again" in p.stderr
    listed = json.loads(spravka(home, "keys", "list", "--json").stdout)
    assert [(k["name"], k["role"], k["groups"]) for k in listed] == [("site", "user", ["hr", "public"])]
    assert key not in json.dumps(listed)
    # the database holds a salted hash, never the key
    raw = (home / "spravka.db").read_bytes()
    assert key.encode() not in raw and key.split("_")[2].encode() not in raw
    assert spravka(home, "keys", "create", "--name", "site", "--role", "user").returncode == 2  # name taken
    assert spravka(home, "keys", "create", "--name", "x", "--role", "root").returncode == 2
    assert spravka(home, "keys", "revoke", "site").returncode == 0
    assert json.loads(spravka(home, "keys", "list", "--json").stdout) == []
    assert json.loads(spravka(home, "keys", "list", "--all", "--json").stdout)[0]["revoked_at"]
    assert spravka(home, "keys", "revoke", "nobody").returncode == 2


def test_serve_demo_serves_the_widget_and_stops_cleanly(tmp_path):
    home = tmp_path / "home"
    sp = Spravka(Settings(home=home, embedder={"provider": "use"}))
    sp.ingestor.ingest_documents([Document(id="pay.md", title="Оплата",
                                           sections=[Section("Курьеру можно заплатить наличными.")])], "default")
    sp.store.update_collection_settings("default", {"embedder": sp.embedder.name})
    sp.close()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "spravka", "--data-dir", str(home), "--embedder", "use", "serve",
                             "--demo", "--port", str(port), "--log-level", "warning"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SPRAVKA_HOME": str(home)})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        page = httpx.get(url + "/").text
        key = (home / "demo.key").read_text().strip()
        assert f'data-key="{key}"' in page and oct((home / "demo.key").stat().st_mode)[-3:] == "600"
        r = httpx.post(url + "/v1/search", json={"query": "оплата курьеру"}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json()["hits"][0]["doc_id"] == "pay.md"
        assert httpx.post(url + "/v1/search", json={"query": "оплата"}).status_code == 401  # no open mode
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why it ended
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err and "demo" in err
