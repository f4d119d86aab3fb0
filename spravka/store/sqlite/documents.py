"""Embedded :class:`~spravka.store.base.DocumentStore` on SQLite."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from spravka.core.errors import NotFoundError
from spravka.core.types import DocStatus, DocumentRecord
from spravka.store.base import SourceRecord
from spravka.store.sqlite.db import Database, now

_DOC_COLS = (
    "doc_id, title, status, source, format, content_hash, metadata, groups, n_chunks, error, reason,"
    " duplicate_of, updated_at"
)


class SqliteDocumentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.transaction():
            yield

    # ---- collections -------------------------------------------------------------------------
    def collection_id(self, name: str, *, create: bool = False) -> int:
        row = self.db.query("SELECT id FROM collections WHERE name=?", (name,))
        if row:
            return int(row[0][0])
        if not create:
            raise NotFoundError(f"collection '{name}' does not exist", hint="ingest something into it first")
        with self.db.transaction():
            self.db.execute("INSERT OR IGNORE INTO collections(name, created_at) VALUES(?, ?)", (name, now()))
            return int(self.db.query("SELECT id FROM collections WHERE name=?", (name,))[0][0])

    def ensure_collection(self, name: str) -> None:
        self.collection_id(name, create=True)

    def has_collection(self, name: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM collections WHERE name=?", (name,)))

    def list_collections(self) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT c.name, c.created_at, c.generation, c.settings,"
            " (SELECT count(*) FROM documents d WHERE d.collection_id=c.id),"
            " (SELECT count(*) FROM chunks k WHERE k.collection_id=c.id)"
            " FROM collections c ORDER BY c.name"
        )
        return [
            {"name": r[0], "created_at": r[1], "generation": r[2], "settings": json.loads(r[3]),
             "documents": r[4], "chunks": r[5]}
            for r in rows
        ]

    def collection_settings(self, name: str) -> dict[str, Any]:
        row = self.db.query("SELECT settings FROM collections WHERE name=?", (name,))
        return json.loads(row[0][0]) if row else {}

    def update_collection_settings(self, name: str, values: dict[str, Any]) -> None:
        with self.db.transaction():
            cid = self.collection_id(name, create=True)
            current = self.collection_settings(name)
            current.update(values)
            self.db.execute("UPDATE collections SET settings=? WHERE id=?", (json.dumps(current, ensure_ascii=False), cid))

    def drop_collection(self, name: str) -> None:
        with self.db.transaction():
            cid = self.collection_id(name)
            for table in ("sources", "documents", "chunks", "titles", "tombstones"):
                self.db.execute(f"DELETE FROM {table} WHERE collection_id=?", (cid,))
            self.db.execute("DELETE FROM collections WHERE id=?", (cid,))

    # ---- sources -----------------------------------------------------------------------------
    def get_source(self, collection: str, path: str) -> SourceRecord | None:
        rows = self.db.query(
            "SELECT s.path, s.file_hash, s.status, s.doc_ids, s.error, s.reason, s.fingerprint, s.root FROM sources s"
            " JOIN collections c ON c.id=s.collection_id WHERE c.name=? AND s.path=?",
            (collection, path),
        )
        return self._source(collection, rows[0]) if rows else None

    @staticmethod
    def _source(collection: str, r: tuple) -> SourceRecord:
        return SourceRecord(collection, r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7])

    def put_source(self, record: SourceRecord) -> None:
        cid = self.collection_id(record.collection, create=True)
        self.db.execute(
            "INSERT OR REPLACE INTO sources(collection_id, path, file_hash, status, doc_ids, error, reason,"
            " fingerprint, root, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?)",
            (cid, record.path, record.file_hash, record.status, json.dumps(record.doc_ids, ensure_ascii=False),
             record.error, record.reason, record.fingerprint, record.root, now()),
        )

    def delete_source(self, collection: str, path: str) -> None:
        cid = self.collection_id(collection)
        self.db.execute("DELETE FROM sources WHERE collection_id=? AND path=?", (cid, path))

    def list_sources(self, collection: str) -> list[SourceRecord]:
        if not self.has_collection(collection):
            return []
        rows = self.db.query(
            "SELECT s.path, s.file_hash, s.status, s.doc_ids, s.error, s.reason, s.fingerprint, s.root FROM sources s"
            " JOIN collections c ON c.id=s.collection_id WHERE c.name=? ORDER BY s.path",
            (collection,),
        )
        return [self._source(collection, r) for r in rows]

    # ---- documents ---------------------------------------------------------------------------
    @staticmethod
    def _doc(collection: str, r: tuple) -> DocumentRecord:
        return DocumentRecord(
            collection=collection, id=r[0], title=r[1], status=DocStatus(r[2]), source=r[3], format=r[4],
            content_hash=r[5], metadata=json.loads(r[6]), access_groups=tuple(json.loads(r[7])), n_chunks=r[8],
            error=r[9], reason=r[10], duplicate_of=r[11], updated_at=r[12],
        )

    def get_document(self, collection: str, doc_id: str) -> DocumentRecord | None:
        rows = self.db.query(
            f"SELECT {_DOC_COLS} FROM documents d JOIN collections c ON c.id=d.collection_id"
            " WHERE c.name=? AND d.doc_id=?",
            (collection, doc_id),
        )
        return self._doc(collection, rows[0]) if rows else None

    def list_documents(self, collection: str, status: DocStatus | None = None) -> list[DocumentRecord]:
        sql = (f"SELECT {_DOC_COLS} FROM documents d JOIN collections c ON c.id=d.collection_id WHERE c.name=?")
        params: list[Any] = [collection]
        if status is not None:
            sql += " AND d.status=?"
            params.append(str(status))
        rows = self.db.query(sql + " ORDER BY d.doc_id", params)
        return [self._doc(collection, r) for r in rows]

    def save_document(self, record: DocumentRecord, text: str, dedup_hash: str, sections: list[dict]) -> None:
        cid = self.collection_id(record.collection, create=True)
        self.db.execute(
            "INSERT OR REPLACE INTO documents(collection_id, doc_id, title, status, source, format, content_hash,"
            " dedup_hash, metadata, groups, n_chunks, error, reason, duplicate_of, text, sections, updated_at)"
            " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (cid, record.id, record.title, str(record.status), record.source, record.format, record.content_hash,
             dedup_hash, json.dumps(record.metadata, ensure_ascii=False),
             json.dumps(list(record.access_groups)), record.n_chunks, record.error, record.reason,
             record.duplicate_of, text, json.dumps(sections, ensure_ascii=False), now()),
        )

    def delete_document(self, collection: str, doc_id: str) -> None:
        cid = self.collection_id(collection)
        self.db.execute("DELETE FROM documents WHERE collection_id=? AND doc_id=?", (cid, doc_id))

    def find_by_dedup_hash(self, collection: str, dedup_hash: str, exclude: str) -> DocumentRecord | None:
        rows = self.db.query(
            f"SELECT {_DOC_COLS} FROM documents d JOIN collections c ON c.id=d.collection_id"
            " WHERE c.name=? AND d.dedup_hash=? AND d.doc_id<>? AND d.status='ok' ORDER BY d.doc_id LIMIT 1",
            (collection, dedup_hash, exclude),
        )
        return self._doc(collection, rows[0]) if rows else None

    def duplicates_of(self, collection: str, doc_id: str) -> list[DocumentRecord]:
        rows = self.db.query(
            f"SELECT {_DOC_COLS} FROM documents d JOIN collections c ON c.id=d.collection_id"
            " WHERE c.name=? AND d.duplicate_of=? ORDER BY d.doc_id",
            (collection, doc_id),
        )
        return [self._doc(collection, r) for r in rows]

    def document_text(self, collection: str, doc_id: str) -> str | None:
        rows = self.db.query(
            "SELECT d.text FROM documents d JOIN collections c ON c.id=d.collection_id WHERE c.name=? AND d.doc_id=?",
            (collection, doc_id),
        )
        return rows[0][0] if rows else None

    def document_sections(self, collection: str, doc_id: str) -> list[dict]:
        rows = self.db.query(
            "SELECT d.sections FROM documents d JOIN collections c ON c.id=d.collection_id"
            " WHERE c.name=? AND d.doc_id=?",
            (collection, doc_id),
        )
        return json.loads(rows[0][0]) if rows and rows[0][0] else []

    # ---- embedding cache ---------------------------------------------------------------------
    def get_vectors(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        hashes = list(hashes)
        for i in range(0, len(hashes), 500):
            part = hashes[i : i + 500]
            marks = ",".join("?" * len(part))
            for h, blob in self.db.query(
                f"SELECT hash, vector FROM embeddings WHERE model=? AND hash IN ({marks})", [model, *part]
            ):
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_vectors(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items]
        with self.db.transaction():
            self.db.conn.executemany("INSERT OR IGNORE INTO embeddings(model, hash, vector) VALUES(?,?,?)", rows)

    # ---- events and jobs ---------------------------------------------------------------------
    def log_event(self, kind: str, payload: dict[str, Any], collection: str | None = None) -> int:
        cur = self.db.execute(
            "INSERT INTO events(ts, kind, collection, payload) VALUES(?,?,?,?)",
            (now(), kind, collection, json.dumps(payload, ensure_ascii=False, default=str)),
        )
        return int(cur.lastrowid or 0)

    def events(self, kind: str | None = None, limit: int = 100, since: str | None = None) -> Iterator[dict[str, Any]]:
        """Newest first; ``since`` (an ISO timestamp) keeps the events at or after it."""
        sql = "SELECT id, ts, kind, collection, payload FROM events WHERE 1"
        params: list[Any] = []
        if kind:
            sql += " AND kind=?"
            params.append(kind)
        if since:
            sql += " AND ts>=?"
            params.append(since)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        for r in self.db.query(sql, params):
            yield {"id": r[0], "ts": r[1], "kind": r[2], "collection": r[3], **json.loads(r[4])}

    def purge_events(self, before: str, kinds: Sequence[str]) -> int:
        """Delete events of ``kinds`` older than ``before`` (the query log's retention)."""
        if not kinds:
            return 0
        cur = self.db.execute(f"DELETE FROM events WHERE ts<? AND kind IN ({','.join('?' * len(kinds))})",
                              [before, *kinds])
        return int(cur.rowcount or 0)

    def start_job(self, kind: str, params: dict[str, Any]) -> str:
        job_id = uuid.uuid4().hex[:12]
        t = now()
        self.db.execute(
            "INSERT INTO jobs(id, kind, params, state, created_at, updated_at) VALUES(?,?,?,?,?,?)",
            (job_id, kind, json.dumps(params, ensure_ascii=False, default=str), "running", t, t),
        )
        return job_id

    def update_job(self, job_id: str, **fields: Any) -> None:
        allowed = {"state", "progress", "total", "message", "error", "result"}
        sets, params = [], []
        for k, v in fields.items():
            if k not in allowed:
                raise ValueError(k)
            sets.append(f"{k}=?")
            params.append(json.dumps(v, ensure_ascii=False, default=str) if k == "result" else v)
        sets.append("updated_at=?")
        params.append(now())
        self.db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id=?", [*params, job_id])

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        rows = self.db.query(
            "SELECT id, kind, params, state, progress, total, message, error, result, created_at, updated_at"
            " FROM jobs WHERE id=?",
            (job_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return {"id": r[0], "kind": r[1], "params": json.loads(r[2]), "state": r[3], "progress": r[4],
                "total": r[5], "message": r[6], "error": r[7], "result": json.loads(r[8]) if r[8] else None,
                "created_at": r[9], "updated_at": r[10]}

    def close(self) -> None:
        self.db.close()
