"""Documents over HTTP: streamed uploads with a hard cap, background ingestion jobs, re-ingestion,
deletion, bad files. A fresh home with the fast embedder (these tests write)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from helpers import bearer as h

pytest.importorskip("fastapi")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from spravka.api import create_app  # noqa: E402
from spravka.api.server import ServerThread  # noqa: E402
from spravka.app import Spravka  # noqa: E402
from spravka.core.settings import Settings  # noqa: E402

COLL = "kb"
RETURNS = ("# Возврат мебели\n\nДиван надлежащего качества можно вернуть в течение 14 дней, если сохранены "
           "упаковка и ярлыки. Деньги возвращаются на карту за 5 рабочих дней.\n")
RETURNS_V2 = ("# Возврат мебели\n\nДиван надлежащего качества можно вернуть в течение 21 дня, если сохранены "
              "упаковка и ярлыки. Деньги возвращаются на карту за 3 рабочих дня.\n")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("api-docs")
    sp = Spravka(Settings(home=home, embedder={"provider": "use"}, server={"max_upload_mb": 1, "rate_per_minute": 100000, "burst": 10000}))
    keys = {
        "editor": sp.keys.create("editor", "editor", ["hr"])[0],
        "admin": sp.keys.create("admin", "admin")[0],
        "hr": sp.keys.create("hr-user", "user", ["hr"])[0],
        "public": sp.keys.create("visitor", "user")[0],
    }
    app = create_app(sp, resume_jobs=False)
    with TestClient(app) as client:
        yield sp, app, client, keys
    sp.close()


def wait_job(c, key: str, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/v1/jobs/{job_id}", headers=h(key)).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def upload(c, key: str, name: str, data: bytes, **fields: str):
    return c.post("/v1/documents", files={"file": (name, data, "application/octet-stream")},
                  data={"collection": COLL, **fields}, headers=h(key))


def search_ids(c, key: str, query: str) -> list[str]:
    r = c.post("/v1/search", json={"query": query, "collection": COLL, "k": 5}, headers=h(key))
    assert r.status_code == 200, r.text
    return [hit["doc_id"] for hit in r.json()["hits"]]


def test_upload_ingests_in_a_job_into_the_uploaders_groups(env):
    sp, _, c, keys = env
    r = upload(c, keys["editor"], "../../etc/Возврат мебели.md", RETURNS.encode())
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["groups"] == ["hr"] and body["files"][0]["file"] == "Возврат мебели.md"
    assert r.headers["location"] == f"/v1/jobs/{body['job_id']}"
    job = wait_job(c, keys["editor"], body["job_id"])
    assert job["state"] == "done" and job["progress"] == job["total"] == 1, job
    assert job["result"]["files"][0]["added"] == 1
    doc = c.get("/v1/documents/Возврат мебели.md", params={"collection": COLL}, headers=h(keys["editor"])).json()
    assert doc["status"] == "ok" and doc["access_groups"] == ["hr"] and doc["n_chunks"] >= 1
    assert (sp.home / "uploads" / COLL / "Возврат мебели.md").is_file()
    assert "Возврат мебели.md" in search_ids(c, keys["hr"], "вернуть диван")
    assert "Возврат мебели.md" not in search_ids(c, keys["public"], "вернуть диван")
    # the visitor does not even learn the job exists
    assert c.get(f"/v1/jobs/{body['job_id']}", headers=h(keys["public"])).status_code == 403


def test_reupload_updates_and_reingest_rereads(env):
    _, _, c, keys = env
    r = upload(c, keys["editor"], "sofa.md", RETURNS.encode())
    assert wait_job(c, keys["editor"], r.json()["job_id"])["state"] == "done"
    r = upload(c, keys["editor"], "sofa.md", RETURNS_V2.encode())
    job = wait_job(c, keys["editor"], r.json()["job_id"])
    assert job["result"]["files"][0]["updated"] == 1
    hits = c.post("/v1/search", json={"query": "вернуть диван", "collection": COLL}, headers=h(keys["hr"])).json()
    assert any("21 дня" in hit["text"] for hit in hits["hits"] if hit["doc_id"] == "sofa.md")
    r = c.post("/v1/documents/reingest", json={"collection": COLL, "ids": ["sofa.md"]}, headers=h(keys["editor"]))
    assert r.status_code == 202
    job = wait_job(c, keys["editor"], r.json()["job_id"])
    assert job["state"] == "done" and job["result"]["failed"] == 0
    assert c.post("/v1/documents/reingest", json={"collection": COLL, "ids": ["missing.md"]},
                  headers=h(keys["editor"])).status_code == 404


def test_delete_removes_the_document_and_its_file(env):
    sp, _, c, keys = env
    r = upload(c, keys["admin"], "temp-note.md", "# Временная заметка\n\nКофемашина стоит на третьем этаже.".encode(),
               groups="public")
    assert wait_job(c, keys["admin"], r.json()["job_id"])["state"] == "done"
    assert "temp-note.md" in search_ids(c, keys["public"], "где кофемашина")
    r = c.delete("/v1/documents/temp-note.md", params={"collection": COLL}, headers=h(keys["admin"]))
    assert r.status_code == 202
    assert wait_job(c, keys["admin"], r.json()["job_id"])["result"]["deleted"] == 1
    assert "temp-note.md" not in search_ids(c, keys["public"], "где кофемашина")
    assert not (sp.home / "uploads" / COLL / "temp-note.md").exists()
    assert not (sp.home / "uploads" / COLL / "temp-note.md.meta.yaml").exists()
    assert c.get("/v1/documents/temp-note.md", params={"collection": COLL}, headers=h(keys["admin"])).status_code == 404


def test_roles_and_groups_of_uploads(env):
    sp, _, c, keys = env
    r = upload(c, keys["editor"], "x.md", b"# x\n\ntext", groups="finance")
    assert r.status_code == 403 and "finance" in r.json()["error"]["message"]
    assert upload(c, keys["hr"], "x.md", b"# x\n\ntext").status_code == 403
    assert not any((sp.home / "uploads" / ".staging").iterdir())


def test_bad_files_are_refused_or_reported(env):
    sp, _, c, keys = env
    r = upload(c, keys["editor"], "virus.exe", b"MZ\x90\x00")
    assert r.status_code == 415
    err = r.json()["error"]
    assert ".md" in err["supported"] and ".pdf" in err["supported"] and ".exe" in err["message"]
    r = upload(c, keys["editor"], "notes.meta.yaml", b"access_groups: [public]")
    assert r.status_code == 415
    r = c.post("/v1/documents", content=b"plain", headers={**h(keys["editor"]), "Content-Type": "text/plain"})
    assert r.status_code == 415
    r = c.post("/v1/documents", data={"collection": COLL}, files={"other": ("", b"", "text/plain")},
               headers=h(keys["editor"]))
    assert r.status_code == 400 and "no file" in r.json()["error"]["message"]
    r = upload(c, keys["editor"], "bad name.md", b"# x\n\ny", collection="../etc")
    assert r.status_code == 400
    # a corrupt PDF is accepted, fails in the job, and its status says why
    r = upload(c, keys["editor"], "broken.pdf", b"%PDF-1.4 this is not really a pdf")
    job = wait_job(c, keys["editor"], r.json()["job_id"])
    assert job["state"] == "done" and job["result"]["failed"] == 1
    doc = c.get("/v1/documents/broken.pdf", params={"collection": COLL}, headers=h(keys["editor"])).json()
    assert doc["status"] == "failed" and doc["error"]
    listed = c.get("/v1/documents", params={"collection": COLL, "status": "failed"}, headers=h(keys["editor"])).json()
    assert [d["id"] for d in listed["documents"]] == ["broken.pdf"]
    assert not any((sp.home / "uploads" / ".staging").iterdir())


def test_oversized_uploads_are_cut_off_early_on_a_real_socket(env):
    sp, app, c, keys = env
    with ServerThread(app) as server:
        # 1. a declared 2 GB body is refused before a byte of it is sent
        boundary = "xyz"
        head = (f"POST /v1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {keys['editor']}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {2 * 2**30}\r\n\r\n")
        with socket.create_connection((server.host, server.port), timeout=10) as s:
            s.sendall(head.encode())
            reply = b""
            while b"limit" not in reply:
                part = s.recv(65536)
                if not part:
                    break
                reply += part
            reply = reply.decode("utf-8", "replace")
        assert reply.startswith("HTTP/1.1 413"), reply[:200]
        assert "over the 1 MB limit" in reply

        # 2. a chunked body (no length) that never ends is cut off at the cap, not buffered
        sent = {"bytes": 0}
        block = b"A" * 65536

        def body():
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.md\"\r\n"
                   "Content-Type: text/markdown\r\n\r\n").encode()
            for _ in range(2 * 2**30 // len(block)):  # up to 2 GB
                sent["bytes"] += len(block)
                yield block

        status = None
        try:
            r = httpx.post(f"{server.url}/v1/documents", content=body(), timeout=30,
                           headers={**h(keys["editor"]), "Content-Type": f"multipart/form-data; boundary={boundary}"})
            status = r.status_code
        except httpx.HTTPError:
            status = "closed"  # the server answered 413 and closed while we were still sending
        assert status in (413, "closed")
        assert sent["bytes"] < 64 * 2**20, sent  # stopped near the 1 MB cap, far from 2 GB
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert not any((sp.home / "uploads" / ".staging").iterdir())
    assert not (sp.home / "uploads" / COLL / "big.md").exists()


def test_unfinished_jobs_resume_after_a_restart(env, tmp_path):
    sp, _, c, keys = env
    folder = sp.home / "uploads" / COLL
    (folder / "resumed.md").write_text("# Парковка\n\nПарковка для сотрудников во дворе, въезд по пропуску.",
                                       encoding="utf-8")
    (folder / "resumed.md.meta.yaml").write_text("access_groups: [public]\n", encoding="utf-8")
    job = sp.store.start_job("api.upload", {"collection": COLL, "files": ["resumed.md"], "key": "x"})
    sp.store.update_job(job, state="running")  # as if the process died here
    with TestClient(create_app(sp)) as c2:  # the lifespan resumes it
        done = wait_job(c2, keys["admin"], job)
    assert done["state"] == "done" and done["result"]["files"][0]["added"] == 1
    assert "resumed.md" in search_ids(c, keys["public"], "где парковка")


def test_documents_list_and_collections(env):
    _, _, c, keys = env
    r = c.get("/v1/documents", params={"collection": COLL}, headers=h(keys["editor"]))
    assert r.status_code == 200 and r.json()["total"] >= 2
    cols = c.get("/v1/collections", headers=h(keys["editor"])).json()["collections"]
    assert COLL in [x["name"] for x in cols]
    assert c.get("/v1/documents", params={"collection": "nope"}, headers=h(keys["editor"])).status_code == 404


def test_files_never_leave_their_folder(env):
    sp, _, c, keys = env
    upload(c, keys["editor"], "..\\..\\evil.md", b"# e\n\nx")
    assert not (Path(sp.home) / "evil.md").exists() and not (Path(sp.home) / "uploads" / "evil.md").exists()
