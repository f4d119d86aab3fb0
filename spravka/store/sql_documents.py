"""The :class:`~spravka.store.base.DocumentStore` in SQL, shared by SQLite and PostgreSQL.

Both backends keep the same tables (collections, sources, documents, the embedding cache, events,
jobs) and the same behaviour, so the queries live here once, written with ``?`` placeholders.
A backend says only how its dialect differs: the placeholder, how JSON goes in and comes out,
the collation that makes ``ORDER BY`` byte order, how many rows a statement touched, and the
two operations whose SQL really differs (merging collection settings, dropping a collection).
"""

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
from spravka.store.sqlite.db import now

_DOC_COLS = (
    "d.doc_id, d.title, d.status, d.source, d.format, d.content_hash, d.metadata, d.groups, d.n_chunks, d.error,"
    " d.reason, d.duplicate_of, d.updated_at"
)
_SRC_COLS = "s.path, s.file_hash, s.status, s.doc_ids, s.error, s.reason, s.fingerprint, s.root"
_DOC_WRITE = (
    "collection_id", "doc_id", "title", "status", "source", "format", "content_hash", "dedup_hash", "metadata",
    "groups", "n_chunks", "error", "reason", "duplicate_of", "text", "sections", "updated_at",
)
_SRC_WRITE = ("collection_id", "path", "file_hash", "status", "doc_ids", "error", "reason", "fingerprint", "root",
              "updated_at")
_BATCH = 500  # hashes per IN (...) list: under SQLite's bound-parameter limit on old builds


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


def strip_nul(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL characters: both backends drop them, so both store the same."""
    return text.replace("\x00", "") if text and "\x00" in text else text


def upsert(table: str, cols: Sequence[str], key: Sequence[str]) -> str:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` (SQLite 3.24+ and PostgreSQL both speak it)."""
    sets = ", ".join(f"{c}=excluded.{c}" for c in cols if c not in key)
    return (f"INSERT INTO {table}({', '.join(cols)}) VALUES({','.join('?' * len(cols))})"
            f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}")


class SqlDocumentStore:
    """Shared queries; subclasses set the dialect hooks below."""

    #: appended to ``ORDER BY`` on text keys so both backends sort by bytes (PostgreSQL's default
    #: collation is the locale's)
    order_collate = ""
    #: SQL for a collection's chunk count in :meth:`list_collections` (``c`` is the collection row)
    chunk_count_sql = "(SELECT count(*) FROM chunks k WHERE k.collection_id=c.id)"

    def __init__(self, db: Any) -> None:
        self.db = db

    # ---- dialect hooks ---------------------------------------------------------------------------
    def sql(self, text: str) -> str:
        """The statement in the driver's placeholder style (``?`` here)."""
        return text

    def json_in(self, value: Any) -> Any:
        """A Python value as the driver should bind it into a JSON column."""
        return dumps(value)

    def json_out(self, value: Any) -> Any:
        """A JSON column as the driver returned it, as a Python value."""
        return json.loads(value)

    def rowcount(self, result: Any) -> int:
        """Rows touched, from what the database's ``execute`` returned."""
        return int(getattr(result, "rowcount", result) or 0)

    def update_collection_settings(self, name: str, values: dict[str, Any]) -> None:
        raise NotImplementedError

    def drop_collection(self, name: str) -> None:
        raise NotImplementedError

    # ---- plumbing --------------------------------------------------------------------------------
    def _query(self, text: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.db.query(self.sql(text), params)

    def _execute(self, text: str, params: Sequence[Any] = ()) -> int:
        return self.rowcount(self.db.execute(self.sql(text), params))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.transaction():
            yield

    # ---- collections -----------------------------------------------------------------------------
    def collection_id(self, name: str, *, create: bool = False) -> int:
        row = self._query("SELECT id FROM collections WHERE name=?", (name,))
        if row:
            return int(row[0][0])
        if not create:
            raise NotFoundError(f"collection '{name}' does not exist", hint="ingest something into it first")
        with self.db.transaction():
            self._execute("INSERT INTO collections(name, created_at) VALUES(?, ?) ON CONFLICT (name) DO NOTHING",
                          (name, now()))
            return int(self._query("SELECT id FROM collections WHERE name=?", (name,))[0][0])

    def ensure_collection(self, name: str) -> None:
        self.collection_id(name, create=True)

    def has_collection(self, name: str) -> bool:
        return bool(self._query("SELECT 1 FROM collections WHERE name=?", (name,)))

    def list_collections(self) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT c.name, c.created_at, c.generation, c.settings,"
            f" (SELECT count(*) FROM documents d WHERE d.collection_id=c.id), {self.chunk_count_sql}"
            f" FROM collections c ORDER BY c.name{self.order_collate}"
        )
        return [{"name": r[0], "created_at": r[1], "generation": r[2], "settings": self.json_out(r[3]),
                 "documents": r[4], "chunks": r[5]} for r in rows]

    def collection_settings(self, name: str) -> dict[str, Any]:
        row = self._query("SELECT settings FROM collections WHERE name=?", (name,))
        return dict(self.json_out(row[0][0])) if row else {}

    # ---- sources ---------------------------------------------------------------------------------
    def _source(self, collection: str, r: tuple) -> SourceRecord:
        return SourceRecord(collection, r[0], r[1], r[2], list(self.json_out(r[3])), r[4], r[5], r[6], r[7])

    def get_source(self, collection: str, path: str) -> SourceRecord | None:
        rows = self._query(
            f"SELECT {_SRC_COLS} FROM sources s JOIN collections c ON c.id=s.collection_id WHERE c.name=? AND s.path=?",
            (collection, path),
        )
        return self._source(collection, rows[0]) if rows else None

    def put_source(self, record: SourceRecord) -> None:
        cid = self.collection_id(record.collection, create=True)
        self._execute(upsert("sources", _SRC_WRITE, ("collection_id", "path")), (
            cid, record.path, record.file_hash, record.status, self.json_in(record.doc_ids), record.error,
            record.reason, record.fingerprint, record.root, now(),
        ))

    def delete_source(self, collection: str, path: str) -> None:
        cid = self.collection_id(collection)
        self._execute("DELETE FROM sources WHERE collection_id=? AND path=?", (cid, path))

    def list_sources(self, collection: str) -> list[SourceRecord]:
        rows = self._query(
            f"SELECT {_SRC_COLS} FROM sources s JOIN collections c ON c.id=s.collection_id WHERE c.name=?"
            f" ORDER BY s.path{self.order_collate}",
            (collection,),
        )
        return [self._source(collection, r) for r in rows]

    # ---- documents -------------------------------------------------------------------------------
    def _doc(self, collection: str, r: tuple) -> DocumentRecord:
        return DocumentRecord(
            collection=collection, id=r[0], title=r[1], status=DocStatus(r[2]), source=r[3], format=r[4],
            content_hash=r[5], metadata=dict(self.json_out(r[6])), access_groups=tuple(self.json_out(r[7])),
            n_chunks=r[8], error=r[9], reason=r[10], duplicate_of=r[11], updated_at=r[12],
        )

    def _docs(self, collection: str, where: str, params: Sequence[Any], limit: int | None = None) -> list[DocumentRecord]:
        rows = self._query(
            f"SELECT {_DOC_COLS} FROM documents d JOIN collections c ON c.id=d.collection_id WHERE c.name=? AND {where}"
            f" ORDER BY d.doc_id{self.order_collate}" + (f" LIMIT {int(limit)}" if limit else ""),
            (collection, *params),
        )
        return [self._doc(collection, r) for r in rows]

    def get_document(self, collection: str, doc_id: str) -> DocumentRecord | None:
        docs = self._docs(collection, "d.doc_id=?", (doc_id,))
        return docs[0] if docs else None

    def list_documents(self, collection: str, status: DocStatus | None = None) -> list[DocumentRecord]:
        if status is None:
            return self._docs(collection, "1=1", ())
        return self._docs(collection, "d.status=?", (str(status),))

    def save_document(self, record: DocumentRecord, text: str, dedup_hash: str, sections: list[dict]) -> None:
        cid = self.collection_id(record.collection, create=True)
        self._execute(upsert("documents", _DOC_WRITE, ("collection_id", "doc_id")), (
            cid, record.id, record.title, str(record.status), record.source, record.format, record.content_hash,
            dedup_hash, self.json_in(record.metadata), self.json_in(list(record.access_groups)), record.n_chunks,
            record.error, record.reason, record.duplicate_of, strip_nul(text), self.json_in(sections), now(),
        ))

    def delete_document(self, collection: str, doc_id: str) -> None:
        cid = self.collection_id(collection)
        self._execute("DELETE FROM documents WHERE collection_id=? AND doc_id=?", (cid, doc_id))

    def find_by_dedup_hash(self, collection: str, dedup_hash: str, exclude: str) -> DocumentRecord | None:
        docs = self._docs(collection, "d.dedup_hash=? AND d.doc_id<>? AND d.status='ok'", (dedup_hash, exclude), 1)
        return docs[0] if docs else None

    def duplicates_of(self, collection: str, doc_id: str) -> list[DocumentRecord]:
        return self._docs(collection, "d.duplicate_of=?", (doc_id,))

    def _doc_column(self, column: str, collection: str, doc_id: str) -> Any:
        rows = self._query(
            f"SELECT d.{column} FROM documents d JOIN collections c ON c.id=d.collection_id"
            " WHERE c.name=? AND d.doc_id=?",
            (collection, doc_id),
        )
        return rows[0][0] if rows else None

    def document_text(self, collection: str, doc_id: str) -> str | None:
        return self._doc_column("text", collection, doc_id)

    def document_sections(self, collection: str, doc_id: str) -> list[dict]:
        value = self._doc_column("sections", collection, doc_id)
        return list(self.json_out(value)) if value else []

    # ---- embedding cache -------------------------------------------------------------------------
    def get_vectors(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        hashes = list(hashes)
        for i in range(0, len(hashes), _BATCH):
            part = hashes[i : i + _BATCH]
            for h, blob in self._query(
                f"SELECT hash, vector FROM embeddings WHERE model=? AND hash IN ({','.join('?' * len(part))})",
                [model, *part],
            ):
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_vectors(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = [(model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items]
        if not rows:
            return
        with self.db.transaction() as conn:
            conn.cursor().executemany(
                self.sql("INSERT INTO embeddings(model, hash, vector) VALUES(?,?,?) ON CONFLICT DO NOTHING"), rows
            )

    def iter_vectors(self, batch: int = 5000) -> Iterator[tuple[str, list[tuple[str, np.ndarray]]]]:
        """Every cached vector as ``(model, [(hash, vector), ...])`` batches (for migrations)."""
        last = ("", "")
        while True:
            rows = self._query(
                "SELECT model, hash, vector FROM embeddings WHERE (model, hash) > (?, ?) ORDER BY model, hash LIMIT ?",
                (*last, batch),
            )
            if not rows:
                return
            by_model: dict[str, list[tuple[str, np.ndarray]]] = {}
            for m, h, blob in rows:
                by_model.setdefault(m, []).append((h, np.frombuffer(blob, dtype=np.float32)))
            yield from by_model.items()
            last = (rows[-1][0], rows[-1][1])

    # ---- events and jobs -------------------------------------------------------------------------
    def log_event(self, kind: str, payload: dict[str, Any], collection: str | None = None) -> int:
        rows = self._query("INSERT INTO events(ts, kind, collection, payload) VALUES(?,?,?,?) RETURNING id",
                           (now(), kind, collection, self.json_in(payload)))
        return int(rows[0][0])

    def events(self, kind: str | None = None, limit: int = 100, since: str | None = None) -> Iterator[dict[str, Any]]:
        """Newest first; ``since`` (an ISO timestamp) keeps the events at or after it."""
        sql = "SELECT id, ts, kind, collection, payload FROM events WHERE 1=1"
        params: list[Any] = []
        if kind:
            sql += " AND kind=?"
            params.append(kind)
        if since:
            sql += " AND ts>=?"
            params.append(since)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        for r in self._query(sql, params):
            yield {"id": r[0], "ts": r[1], "kind": r[2], "collection": r[3], **self.json_out(r[4])}

    def purge_events(self, before: str, kinds: Sequence[str]) -> int:
        """Delete events of ``kinds`` older than ``before`` (the query log's retention)."""
        if not kinds:
            return 0
        return self._execute(f"DELETE FROM events WHERE ts<? AND kind IN ({','.join('?' * len(kinds))})",
                             [before, *kinds])

    def start_job(self, kind: str, params: dict[str, Any]) -> str:
        job_id = uuid.uuid4().hex[:12]
        t = now()
        self._execute("INSERT INTO jobs(id, kind, params, state, created_at, updated_at) VALUES(?,?,?,?,?,?)",
                      (job_id, kind, self.json_in(params), "running", t, t))
        return job_id

    def update_job(self, job_id: str, **fields: Any) -> None:
        allowed = {"state", "progress", "total", "message", "error", "result"}
        sets, params = [], []
        for k, v in fields.items():
            if k not in allowed:
                raise ValueError(k)
            sets.append(f"{k}=?")
            params.append(self.json_in(v) if k == "result" else v)
        sets.append("updated_at=?")
        params.append(now())
        self._execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id=?", [*params, job_id])

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT id, kind, params, state, progress, total, message, error, result, created_at, updated_at"
            " FROM jobs WHERE id=?",
            (job_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return {"id": r[0], "kind": r[1], "params": self.json_out(r[2]), "state": r[3], "progress": r[4],
                "total": r[5], "message": r[6], "error": r[7], "result": self.json_out(r[8]) if r[8] else None,
                "created_at": r[9], "updated_at": r[10]}

    def close(self) -> None:
        self.db.close()
