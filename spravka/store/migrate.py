"""Copy a knowledge base between storage backends without re-embedding (``spravka migrate``).

The embedding cache goes first, then each collection document by document: the document's
chunks (with their vectors, title vectors and lemmas, read back from the source index) and its
record are written in one target transaction, and sources last. A document whose record and
chunks are already in the target is skipped, so an interrupted migration resumes where it
stopped and a finished one re-runs as a no-op. Events and jobs stay where they are.

When the source and the target share the data directory's SQLite database (embedded ↔ Milvus),
only the index is copied: the documents are already there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from spravka.core.errors import ConfigError
from spravka.core.types import Chunk, DocStatus, DocumentRecord
from spravka.store.base import IndexRow


class MigrationProgress(Protocol):
    def vectors(self, n: int) -> None: ...

    def collection(self, name: str, documents: int) -> None: ...

    def document(self, doc_id: str, chunks: int, copied: bool) -> None: ...


class _Quiet:
    def vectors(self, n: int) -> None:
        pass

    def collection(self, name: str, documents: int) -> None:
        pass

    def document(self, doc_id: str, chunks: int, copied: bool) -> None:
        pass


@dataclass
class MigrationReport:
    collections: list[str] = field(default_factory=list)
    documents: int = 0
    copied: int = 0
    skipped: int = 0
    chunks: int = 0
    vectors: int = 0
    sources: int = 0
    seconds: float = 0.0


# ---- reading a source, whatever the backend --------------------------------------------------------
def _sqlite_path(store: Any) -> Path | None:
    db = getattr(store, "db", None)
    path = getattr(db, "path", None)
    return Path(path).resolve() if path is not None and hasattr(db, "conn") else None


def _query(store: Any, sql: str, params: tuple) -> list[tuple]:
    """A read on the store's own database (``?`` placeholders; PostgreSQL gets ``%s``)."""
    if _sqlite_path(store) is None:
        sql = sql.replace("?", "%s")
    return store.db.query(sql, params)


def export_rows(index: Any, collection: str, doc_id: str) -> list[IndexRow]:
    """A document's index rows as written, vectors included."""
    if hasattr(index, "export_document"):
        return index.export_document(collection, doc_id)
    if hasattr(index, "dense") and hasattr(index, "_fts"):  # the embedded index
        return _export_sqlite(index, collection, doc_id)
    raise ConfigError(f"cannot read documents back from {type(index).__name__}")


def _export_sqlite(index: Any, collection: str, doc_id: str) -> list[IndexRow]:
    db = index.db
    cid = index.store.collection_id(collection)
    rows = db.query(
        'SELECT id, ord, text, title, heading, page, start, "end", tokens, vector, title_hash, metadata, groups'
        " FROM chunks WHERE collection_id=? AND doc_id=? ORDER BY ord",
        (cid, doc_id),
    )
    if not rows:
        return []
    import json

    ids = [r[0] for r in rows]
    marks = ",".join("?" * len(ids))
    terms = {
        r[0]: (r[1], r[2])
        for r in db.query(f"SELECT rowid, title, body FROM {index._fts(cid)} WHERE rowid IN ({marks})", ids)
    }
    hashes = sorted({r[10] for r in rows})
    marks = ",".join("?" * len(hashes))
    titles = dict(
        db.query(
            f"SELECT hash, vector FROM titles WHERE collection_id=? AND hash IN ({marks})", [cid, *hashes]
        )
    )
    out = []
    for r in rows:
        chunk = Chunk(
            doc_id=doc_id,
            ord=r[1],
            text=r[2],
            title=r[3],
            heading=r[4],
            page=r[5],
            start=r[6],
            end=r[7],
            tokens=r[8],
        )
        blob = titles.get(r[10])
        tt, bt = terms.get(r[0], ("", ""))
        out.append(
            IndexRow(
                chunk,
                np.frombuffer(r[9], dtype=np.float32).copy(),
                np.frombuffer(blob, dtype=np.float32).copy() if blob is not None else None,
                r[10],
                tt,
                bt,
                json.loads(r[11]),
                tuple(json.loads(r[12])),
            )
        )
    return out


def _dedup_hash(store: Any, collection: str, doc_id: str) -> str:
    rows = _query(
        store,
        "SELECT d.dedup_hash FROM documents d JOIN collections c ON c.id = d.collection_id"
        " WHERE c.name = ? AND d.doc_id = ?",
        (collection, doc_id),
    )
    return rows[0][0] if rows else ""


def _sections(store: Any, collection: str, doc_id: str) -> list[dict]:
    return store.document_sections(collection, doc_id) if hasattr(store, "document_sections") else []


# ---- the copy ------------------------------------------------------------------------------------
def _in_target(rec: DocumentRecord, dst: DocumentRecord | None, dst_index: Any, collection: str) -> bool:
    if dst is None or (dst.content_hash, dst.status, dst.n_chunks, dst.duplicate_of) != (
        rec.content_hash,
        rec.status,
        rec.n_chunks,
        rec.duplicate_of,
    ):
        return False
    if rec.status != DocStatus.OK:
        return True
    return len(dst_index.chunk_spans(collection, rec.id)) == rec.n_chunks


def migrate(
    src_store: Any,
    src_index: Any,
    dst_store: Any,
    dst_index: Any,
    collections: list[str] | None = None,
    progress: MigrationProgress | None = None,
) -> MigrationReport:
    progress = progress or _Quiet()
    report = MigrationReport()
    t0 = time.perf_counter()
    same_db = _sqlite_path(src_store) is not None and _sqlite_path(src_store) == _sqlite_path(dst_store)
    names = collections or [c["name"] for c in src_store.list_collections()]
    bulk = hasattr(dst_index, "build_ann") and hasattr(dst_index, "defer_ann")
    if bulk:
        dst_index.defer_ann = True
    for name in names:
        if not src_store.has_collection(name):
            raise ConfigError(f"collection '{name}' does not exist in the source store")
    if not same_db:
        for model, items in src_store.iter_vectors():
            dst_store.put_vectors(model, items)
            report.vectors += len(items)
            progress.vectors(len(items))
    for name in names:
        report.collections.append(name)
        docs = src_store.list_documents(name)
        progress.collection(name, len(docs))
        if not same_db:
            dst_store.ensure_collection(name)
            dst_store.update_collection_settings(name, src_store.collection_settings(name))
        for rec in docs:
            report.documents += 1
            if _in_target(rec, dst_store.get_document(name, rec.id), dst_index, name):
                report.skipped += 1
                progress.document(rec.id, rec.n_chunks, False)
                continue
            rows = export_rows(src_index, name, rec.id) if rec.status == DocStatus.OK else []
            with dst_store.transaction():
                if rows:
                    dst_index.replace_document(name, rec.id, rows)
                else:
                    dst_index.delete_documents(name, [rec.id])
                if not same_db:
                    dst_store.save_document(
                        rec,
                        src_store.document_text(name, rec.id) or "",
                        _dedup_hash(src_store, name, rec.id),
                        _sections(src_store, name, rec.id),
                    )
            report.copied += 1
            report.chunks += len(rows)
            progress.document(rec.id, len(rows), True)
        if bulk:
            dst_index.build_ann(name)
        if not same_db:
            for source in src_store.list_sources(name):
                dst_store.put_source(source)
                report.sources += 1
    if bulk:
        dst_index.defer_ann = False
    report.seconds = round(time.perf_counter() - t0, 2)
    return report
