""":class:`~spravka.store.base.DocumentStore` on PostgreSQL (same behaviour as the SQLite one)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from spravka.core.errors import NotFoundError
from spravka.core.types import DocStatus, DocumentRecord
from spravka.store.base import SourceRecord
from spravka.store.postgres.db import PgDatabase
from spravka.store.sqlite.db import now

_DOC_COLS = (
    "d.doc_id, d.title, d.status, d.source, d.format, d.content_hash, d.metadata, d.groups, d.n_chunks, d.error,"
    " d.reason, d.duplicate_of, d.updated_at"
)
_SRC_COLS = "s.path, s.file_hash, s.status, s.doc_ids, s.error, s.reason, s.fingerprint, s.root"


class PgDocumentStore:
    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.transaction():
            yield

    # ---- collections -------------------------------------------------------------------------
    def collection_id(self, name: str, *, create: bool = False) -> int:
        row = self.db.query("SELECT id FROM collections WHERE name=%s", (name,))
        if row:
            return int(row[0][0])
        if not create:
            raise NotFoundError(f"collection '{name}' does not exist", hint="ingest something into it first")
        self.db.execute(
            "INSERT INTO collections(name, created_at) VALUES(%s, %s) ON CONFLICT (name) DO NOTHING",
            (name, now()),
        )
        return int(self.db.query("SELECT id FROM collections WHERE name=%s", (name,))[0][0])

    def ensure_collection(self, name: str) -> None:
        self.collection_id(name, create=True)

    def has_collection(self, name: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM collections WHERE name=%s", (name,)))

    def list_collections(self) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT c.name, c.created_at, c.generation, c.settings,"
            " (SELECT count(*) FROM documents d WHERE d.collection_id=c.id), c.n_rows"
            " FROM collections c ORDER BY c.name"
        )
        return [
            {
                "name": r[0],
                "created_at": r[1],
                "generation": r[2],
                "settings": r[3],
                "documents": r[4],
                "chunks": r[5],
            }
            for r in rows
        ]

    def collection_settings(self, name: str) -> dict[str, Any]:
        row = self.db.query("SELECT settings FROM collections WHERE name=%s", (name,))
        return dict(row[0][0]) if row else {}

    def update_collection_settings(self, name: str, values: dict[str, Any]) -> None:
        with self.db.transaction():
            cid = self.collection_id(name, create=True)
            self.db.execute(
                "UPDATE collections SET settings = settings || %s WHERE id=%s", (Jsonb(values), cid)
            )

    def drop_collection(self, name: str) -> None:
        with self.db.transaction():
            cid = self.collection_id(name)
            for kind in ("vec", "tvec"):
                self.db.execute(f"DROP INDEX IF EXISTS chunks_{kind}_c{cid}")
            self.db.execute("DELETE FROM collections WHERE id=%s", (cid,))  # cascades

    # ---- sources -----------------------------------------------------------------------------
    @staticmethod
    def _source(collection: str, r: tuple) -> SourceRecord:
        return SourceRecord(collection, r[0], r[1], r[2], list(r[3]), r[4], r[5], r[6], r[7])

    def get_source(self, collection: str, path: str) -> SourceRecord | None:
        rows = self.db.query(
            f"SELECT {_SRC_COLS} FROM sources s JOIN collections c ON c.id=s.collection_id WHERE c.name=%s AND s.path=%s",
            (collection, path),
        )
        return self._source(collection, rows[0]) if rows else None

    def put_source(self, record: SourceRecord) -> None:
        cid = self.collection_id(record.collection, create=True)
        self.db.execute(
            "INSERT INTO sources(collection_id, path, file_hash, status, doc_ids, error, reason, fingerprint, root,"
            " updated_at) VALUES(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (collection_id, path) DO UPDATE SET"
            " file_hash=excluded.file_hash, status=excluded.status, doc_ids=excluded.doc_ids, error=excluded.error,"
            " reason=excluded.reason, fingerprint=excluded.fingerprint, root=excluded.root, updated_at=excluded.updated_at",
            (
                cid,
                record.path,
                record.file_hash,
                record.status,
                Jsonb(record.doc_ids),
                record.error,
                record.reason,
                record.fingerprint,
                record.root,
                now(),
            ),
        )

    def delete_source(self, collection: str, path: str) -> None:
        cid = self.collection_id(collection)
        self.db.execute("DELETE FROM sources WHERE collection_id=%s AND path=%s", (cid, path))

    def list_sources(self, collection: str) -> list[SourceRecord]:
        rows = self.db.query(
            f"SELECT {_SRC_COLS} FROM sources s JOIN collections c ON c.id=s.collection_id WHERE c.name=%s"
            ' ORDER BY s.path COLLATE "C"',
            (collection,),
        )
        return [self._source(collection, r) for r in rows]

    # ---- documents ---------------------------------------------------------------------------
    @staticmethod
    def _doc(collection: str, r: tuple) -> DocumentRecord:
        return DocumentRecord(
            collection=collection,
            id=r[0],
            title=r[1],
            status=DocStatus(r[2]),
            source=r[3],
            format=r[4],
            content_hash=r[5],
            metadata=dict(r[6]),
            access_groups=tuple(r[7]),
            n_chunks=r[8],
            error=r[9],
            reason=r[10],
            duplicate_of=r[11],
            updated_at=r[12],
        )

    def _docs(
        self, collection: str, where: str, params: Sequence[Any], tail: str = ""
    ) -> list[DocumentRecord]:
        rows = self.db.query(
            f"SELECT {_DOC_COLS} FROM documents d JOIN collections c ON c.id=d.collection_id WHERE c.name=%s AND {where}"
            f"{tail}",
            (collection, *params),
        )
        return [self._doc(collection, r) for r in rows]

    def get_document(self, collection: str, doc_id: str) -> DocumentRecord | None:
        docs = self._docs(collection, "d.doc_id=%s", (doc_id,))
        return docs[0] if docs else None

    def list_documents(self, collection: str, status: DocStatus | None = None) -> list[DocumentRecord]:
        if status is None:
            return self._docs(collection, "true", (), ' ORDER BY d.doc_id COLLATE "C"')
        return self._docs(collection, "d.status=%s", (str(status),), ' ORDER BY d.doc_id COLLATE "C"')

    def save_document(self, record: DocumentRecord, text: str, dedup_hash: str, sections: list[dict]) -> None:
        cid = self.collection_id(record.collection, create=True)
        self.db.execute(
            "INSERT INTO documents(collection_id, doc_id, title, status, source, format, content_hash, dedup_hash,"
            " metadata, groups, n_chunks, error, reason, duplicate_of, text, sections, updated_at)"
            " VALUES(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
            " ON CONFLICT (collection_id, doc_id) DO UPDATE SET title=excluded.title, status=excluded.status,"
            " source=excluded.source, format=excluded.format, content_hash=excluded.content_hash,"
            " dedup_hash=excluded.dedup_hash, metadata=excluded.metadata, groups=excluded.groups,"
            " n_chunks=excluded.n_chunks, error=excluded.error, reason=excluded.reason,"
            " duplicate_of=excluded.duplicate_of, text=excluded.text, sections=excluded.sections,"
            " updated_at=excluded.updated_at",
            (
                cid,
                record.id,
                record.title,
                str(record.status),
                record.source,
                record.format,
                record.content_hash,
                dedup_hash,
                Jsonb(record.metadata),
                Jsonb(list(record.access_groups)),
                record.n_chunks,
                record.error,
                record.reason,
                record.duplicate_of,
                _nul(text),
                Jsonb(sections),
                now(),
            ),
        )

    def delete_document(self, collection: str, doc_id: str) -> None:
        cid = self.collection_id(collection)
        self.db.execute("DELETE FROM documents WHERE collection_id=%s AND doc_id=%s", (cid, doc_id))

    def find_by_dedup_hash(self, collection: str, dedup_hash: str, exclude: str) -> DocumentRecord | None:
        docs = self._docs(
            collection,
            "d.dedup_hash=%s AND d.doc_id<>%s AND d.status='ok'",
            (dedup_hash, exclude),
            ' ORDER BY d.doc_id COLLATE "C" LIMIT 1',
        )
        return docs[0] if docs else None

    def duplicates_of(self, collection: str, doc_id: str) -> list[DocumentRecord]:
        return self._docs(collection, "d.duplicate_of=%s", (doc_id,), ' ORDER BY d.doc_id COLLATE "C"')

    def document_text(self, collection: str, doc_id: str) -> str | None:
        rows = self.db.query(
            "SELECT d.text FROM documents d JOIN collections c ON c.id=d.collection_id WHERE c.name=%s AND d.doc_id=%s",
            (collection, doc_id),
        )
        return rows[0][0] if rows else None

    def document_sections(self, collection: str, doc_id: str) -> list[dict]:
        rows = self.db.query(
            "SELECT d.sections FROM documents d JOIN collections c ON c.id=d.collection_id"
            " WHERE c.name=%s AND d.doc_id=%s",
            (collection, doc_id),
        )
        return list(rows[0][0]) if rows and rows[0][0] else []

    # ---- embedding cache ---------------------------------------------------------------------
    def get_vectors(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        hashes = list(hashes)
        for i in range(0, len(hashes), 2000):
            for h, blob in self.db.query(
                "SELECT hash, vector FROM embeddings WHERE model=%s AND hash = ANY(%s)",
                (model, hashes[i : i + 2000]),
            ):
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_vectors(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items]
        if not rows:
            return
        with self.db.transaction() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO embeddings(model, hash, vector) VALUES(%s,%s,%s) ON CONFLICT DO NOTHING", rows
            )

    def iter_vectors(self, batch: int = 5000) -> Iterator[tuple[str, list[tuple[str, np.ndarray]]]]:
        """Every cached vector as ``(model, [(hash, vector), ...])`` batches (for migrations)."""
        last = ("", "")
        while True:
            rows = self.db.query(
                "SELECT model, hash, vector FROM embeddings WHERE (model, hash) > (%s, %s) ORDER BY model, hash LIMIT %s",
                (*last, batch),
            )
            if not rows:
                return
            by_model: dict[str, list[tuple[str, np.ndarray]]] = {}
            for m, h, blob in rows:
                by_model.setdefault(m, []).append((h, np.frombuffer(blob, dtype=np.float32)))
            yield from by_model.items()
            last = (rows[-1][0], rows[-1][1])

    # ---- events and jobs ---------------------------------------------------------------------
    def log_event(self, kind: str, payload: dict[str, Any], collection: str | None = None) -> int:
        rows = self.db.query(
            "INSERT INTO events(ts, kind, collection, payload) VALUES(%s,%s,%s,%s) RETURNING id",
            (now(), kind, collection, Jsonb(payload, dumps=_dumps)),
        )
        return int(rows[0][0])

    def events(self, kind: str | None = None, limit: int = 100, since: str | None = None) -> Iterator[dict[str, Any]]:
        sql = "SELECT id, ts, kind, collection, payload FROM events WHERE true"
        params: list[Any] = []
        if kind:
            sql += " AND kind=%s"
            params.append(kind)
        if since:
            sql += " AND ts>=%s"
            params.append(since)
        sql += " ORDER BY id DESC LIMIT %s"
        params.append(limit)
        for r in self.db.query(sql, params):
            yield {"id": r[0], "ts": r[1], "kind": r[2], "collection": r[3], **r[4]}

    def purge_events(self, before: str, kinds: Sequence[str]) -> int:
        if not kinds:
            return 0
        return int(self.db.execute("DELETE FROM events WHERE ts<%s AND kind = ANY(%s)", (before, list(kinds))) or 0)

    def start_job(self, kind: str, params: dict[str, Any]) -> str:
        job_id = uuid.uuid4().hex[:12]
        t = now()
        self.db.execute(
            "INSERT INTO jobs(id, kind, params, state, created_at, updated_at) VALUES(%s,%s,%s,%s,%s,%s)",
            (job_id, kind, Jsonb(params, dumps=_dumps), "running", t, t),
        )
        return job_id

    def update_job(self, job_id: str, **fields: Any) -> None:
        allowed = {"state", "progress", "total", "message", "error", "result"}
        sets, params = [], []
        for k, v in fields.items():
            if k not in allowed:
                raise ValueError(k)
            sets.append(f"{k}=%s")
            params.append(Jsonb(v, dumps=_dumps) if k == "result" else v)
        sets.append("updated_at=%s")
        params.append(now())
        self.db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id=%s", [*params, job_id])

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        rows = self.db.query(
            "SELECT id, kind, params, state, progress, total, message, error, result, created_at, updated_at"
            " FROM jobs WHERE id=%s",
            (job_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return {
            "id": r[0],
            "kind": r[1],
            "params": r[2],
            "state": r[3],
            "progress": r[4],
            "total": r[5],
            "message": r[6],
            "error": r[7],
            "result": r[8],
            "created_at": r[9],
            "updated_at": r[10],
        }

    def close(self) -> None:
        self.db.close()


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False, default=str)


def _nul(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL characters (SQLite can): drop them."""
    return text.replace("\x00", "") if text and "\x00" in text else text
