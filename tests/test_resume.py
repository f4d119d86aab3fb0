"""Crash safety: ``kill -9`` in the middle of an ingestion, run it again, and nothing is lost or
duplicated; documents committed before the kill are not processed again."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from spravka.app import Spravka
from spravka.core.settings import Settings
from spravka.core.types import DocStatus

N_DOCS = 60


def corpus(root: Path) -> Path:
    root.mkdir(parents=True)
    topics = ["возврат", "доставка", "оплата", "гарантия", "отпуск", "пароль", "принтер", "VPN", "премия", "склад"]
    for i in range(N_DOCS):
        t = topics[i % len(topics)]
        body = " ".join(
            f"Правило {i}.{j}: по вопросу «{t}» сотрудник обращается в отдел {j + 1} и получает ответ в течение {j + i} "
            f"рабочих дней, если заявка оформлена по форме {100 + i}." for j in range(9)
        )
        (root / f"doc-{i:03d}.md").write_text(f"# Регламент {i}: {t}\n\n{body}\n", encoding="utf-8")
    return root


def ok_documents(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT count(*) FROM documents WHERE status='ok'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_kill_minus_nine_then_rerun(tmp_path):
    kb = corpus(tmp_path / "kb")
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "spravka", "--data-dir", str(home), "ingest", str(kb), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    seen = 0
    while time.time() < deadline and proc.poll() is None:
        seen = ok_documents(home / "spravka.db")
        if seen >= 8:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the ingestion finished before it could be killed"
    committed = ok_documents(home / "spravka.db")
    assert 8 <= committed < N_DOCS

    app = Spravka(Settings(home=home))
    try:
        report = app.ingest(kb)
        assert report.failed == 0
        assert report.added + report.unchanged == N_DOCS
        assert report.unchanged == committed  # work committed before the kill is kept, not redone
        docs = app.store.list_documents("default")
        assert len(docs) == N_DOCS and all(d.status == DocStatus.OK for d in docs)
        db = app.db
        cid = app.store.collection_id("default")
        per_doc = dict(db.query("SELECT doc_id, count(*) FROM chunks WHERE collection_id=? GROUP BY doc_id", (cid,)))
        assert per_doc == {d.id: d.n_chunks for d in docs}
        dup = db.query("SELECT doc_id, ord, count(*) c FROM chunks WHERE collection_id=? GROUP BY doc_id, ord HAVING c > 1",
                       (cid,))
        assert dup == []
        fts_rows = db.query(f"SELECT count(*) FROM fts_{cid}")[0][0]
        assert fts_rows == sum(per_doc.values())
        # the same data as an uninterrupted run would give
        again = app.ingest(kb)
        assert (again.added, again.updated, again.embedded) == (0, 0, 0)
        hits = app.search("заявка по форме 142", k=5, mode="lexical").hits
        assert hits and hits[0].doc_id == "doc-042.md"
    finally:
        app.close()
