"""Embedded :class:`~spravka.store.base.SearchIndex`: chunks and FTS5 in SQLite, vectors in
numpy snapshots (:mod:`spravka.store.sqlite.dense`).

Lexical search is BM25 over our own lemmas (one FTS5 table per collection, so term statistics
never mix collections). FTS5 stores the terms; queries are scored by an in-memory
:class:`~spravka.store.lexical.Bm25Index` built from it (saved beside the dense snapshots, so a
restart loads it instead of re-reading every chunk) and caught up per generation, with FTS5's
exact formula, because FTS5 itself scores every matching row and costs 100-200 ms a chatty
question at 100k chunks. Filters are the dense snapshot's masks (the same semantics as the SQL
of :func:`compile_filter`, which FTS5 mode still uses: ``lexical_engine="fts5"``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from spravka.core.filters import Filter
from spravka.core.types import Hit
from spravka.store.base import DenseCandidates, IndexRow, LexicalCandidates
from spravka.store.lexical import Bm25Index, Vocabulary, VocabularyCache
from spravka.store.sqlite.db import Database
from spravka.store.sqlite.dense import DenseStore
from spravka.store.sqlite.documents import SqliteDocumentStore

#: a JSON value as Python's ``str()`` writes it, which is how ``Filter.matches`` compares values
_AS_TEXT = "(CASE type WHEN 'true' THEN 'True' WHEN 'false' THEN 'False' ELSE CAST(value AS TEXT) END)"


def compile_filter(flt: Filter, alias: str = "c") -> tuple[str, list]:
    """SQL for a filter over the chunks table: the same semantics as ``Filter.matches``."""
    parts: list[str] = []
    params: list = []
    for cond in flt.conditions:
        path = '$."' + cond.field.replace('"', "") + '"'
        src = f"json_each({alias}.metadata, ?)"
        # Values compare as text, as Filter.matches compares str(value): a JSON number 2 is "2".
        if cond.op in ("eq", "ne"):
            clause = f"EXISTS (SELECT 1 FROM {src} WHERE {_AS_TEXT} = ?)"
            params += [path, cond.value]
            parts.append(clause if cond.op == "eq" else f"NOT {clause}")
        elif cond.op == "in":
            values = list(cond.value) if isinstance(cond.value, tuple) else [cond.value]
            parts.append(f"EXISTS (SELECT 1 FROM {src} WHERE {_AS_TEXT} IN ({','.join('?' * len(values))}))")
            params += [path, *values]
        else:
            parts.append(f"EXISTS (SELECT 1 FROM {src} WHERE spv_cmp({_AS_TEXT}, ?, ?))")
            params += [path, cond.op, str(cond.value)]
    if flt.groups is not None:
        groups = flt.effective_groups()
        parts.append(f"EXISTS (SELECT 1 FROM json_each({alias}.groups) WHERE value IN ({','.join('?' * len(groups))}))")
        params += list(groups)
    return (" AND ".join(parts) or "1"), params


def fts_query(terms: Sequence[str]) -> str:
    """OR of quoted terms: every term may contribute, BM25 ranks by how many and how rare."""
    seen = dict.fromkeys(t.replace('"', "") for t in terms if t)
    return " OR ".join(f'"{t}"' for t in seen if t)


class SqliteSearchIndex:
    def __init__(self, db: Database, store: SqliteDocumentStore, snapshot_dir: Path, dim: int) -> None:
        self.db = db
        self.store = store
        self.dim = dim
        self.dense = DenseStore(db, snapshot_dir)
        self._vocab = VocabularyCache()
        #: "memory" (default): in-memory BM25 over the FTS5 terms; "fts5": FTS5's own bm25()
        self.lexical_engine = "memory"
        self._bm25: dict[int, tuple[int, Bm25Index]] = {}
        self._bm25_lock = threading.Lock()

    def _cid(self, collection: str, create: bool = False) -> int:
        return self.store.collection_id(collection, create=create)

    def _fts(self, cid: int) -> str:
        return f"fts_{cid}"

    def _has_fts(self, cid: int) -> bool:
        return bool(self.db.query("SELECT 1 FROM sqlite_master WHERE name=?", (self._fts(cid),)))

    def _ensure_fts(self, cid: int) -> None:
        self.db.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {self._fts(cid)} USING fts5(title, body, tokenize='unicode61')"
        )
        self.db.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {self._fts(cid)}_vocab USING fts5vocab('{self._fts(cid)}', 'row')"
        )

    def _bump(self, cid: int) -> int:
        self.db.execute("UPDATE collections SET generation=generation+1 WHERE id=?", (cid,))
        return int(self.db.query("SELECT generation FROM collections WHERE id=?", (cid,))[0][0])

    def _remove(self, cid: int, doc_ids: Iterable[str], generation: int) -> None:
        fts = self._fts(cid)
        for doc_id in doc_ids:
            old = [r[0] for r in self.db.query("SELECT id FROM chunks WHERE collection_id=? AND doc_id=?", (cid, doc_id))]
            if not old:
                continue
            marks = ",".join("?" * len(old))
            self.db.execute(f"DELETE FROM {fts} WHERE rowid IN ({marks})", old)
            self.db.execute(f"DELETE FROM chunks WHERE id IN ({marks})", old)
            self.db.conn.executemany(
                "INSERT INTO tombstones(collection_id, chunk_id, generation) VALUES(?,?,?)",
                [(cid, i, generation) for i in old],
            )

    def replace_document(self, collection: str, doc_id: str, rows: Sequence[IndexRow]) -> None:
        with self.db.transaction():
            cid = self._cid(collection, create=True)
            self._ensure_fts(cid)
            generation = self._bump(cid)
            self._remove(cid, [doc_id], generation)
            fts = self._fts(cid)
            for row in rows:
                c = row.chunk
                if row.vector.shape != (self.dim,):
                    raise ValueError(f"vector of dim {row.vector.shape} for an index of dim {self.dim}")
                cur = self.db.execute(
                    'INSERT INTO chunks(collection_id, doc_id, ord, text, title, heading, page, start, "end", tokens,'
                    " vector, title_hash, metadata, groups) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (cid, doc_id, c.ord, c.text, c.title, c.heading, c.page, c.start, c.end, c.tokens,
                     np.asarray(row.vector, dtype=np.float32).tobytes(), row.title_hash,
                     json.dumps(row.metadata, ensure_ascii=False, sort_keys=True), json.dumps(list(row.groups))),
                )
                self.db.execute(f"INSERT INTO {fts}(rowid, title, body) VALUES(?,?,?)",
                                (cur.lastrowid, row.title_terms, row.body_terms))
                if row.title_vector is not None:
                    self.db.execute(
                        "INSERT OR IGNORE INTO titles(collection_id, hash, vector) VALUES(?,?,?)",
                        (cid, row.title_hash, np.asarray(row.title_vector, dtype=np.float32).tobytes()),
                    )

    def delete_documents(self, collection: str, doc_ids: Iterable[str]) -> None:
        if not self.store.has_collection(collection):
            return
        with self.db.transaction():
            cid = self._cid(collection)
            self._ensure_fts(cid)
            self._remove(cid, list(doc_ids), self._bump(cid))

    def search_dense(
        self,
        collection: str,
        vector: np.ndarray,
        n: int,
        flt: Filter,
        title_weight: float = 1.0,
        include: Sequence[int] = (),
    ) -> DenseCandidates:
        if not self.store.has_collection(collection):
            return DenseCandidates([], [], [])
        snap = self.dense.snapshot(self._cid(collection), self.dim)
        return snap.search(np.asarray(vector, dtype=np.float32), n, flt, title_weight, include)

    def vocabulary(self, cid: int) -> Vocabulary:
        generation = int(self.db.query("SELECT generation FROM collections WHERE id=?", (cid,))[0][0])

        def load() -> list[str]:
            if self.lexical_engine == "memory":
                return self.bm25(cid).terms()
            self._ensure_fts(cid)
            return [r[0] for r in self.db.query(f"SELECT term FROM {self._fts(cid)}_vocab")]

        return self._vocab.get(cid, generation, load)

    def search_lexical(
        self,
        collection: str,
        terms: Sequence[str],
        n: int,
        flt: Filter,
        title_boost: float = 2.0,
        fuzzy: bool = True,
    ) -> LexicalCandidates:
        if not terms or not self.store.has_collection(collection):
            return LexicalCandidates([], [])
        cid = self._cid(collection)
        fts = self._fts(cid)
        if not self._has_fts(cid):
            return LexicalCandidates([], [])
        if fuzzy:
            terms = self.vocabulary(cid).expand(terms)
        if self.lexical_engine == "memory":
            index = self.bm25(cid)
            allowed = None
            if not flt.empty:
                # The filter's semantics live in one place: the dense snapshot's per-filter masks.
                # A chunk newer than the snapshot is not allowed (fails closed).
                snap = self.dense.snapshot(cid, self.dim)

                def allowed(ids: np.ndarray) -> np.ndarray:
                    return snap.allows(ids, flt)

            ids, scores, complete = index.search(terms, n, title_boost, allowed)
            return LexicalCandidates([int(i) for i in ids], [float(x) for x in scores], complete)
        query = fts_query(terms)
        if not query:
            return LexicalCandidates([], [])
        where, params = compile_filter(flt)
        rows = self.db.query(
            f"SELECT f.rowid, -bm25({fts}, ?, 1.0) AS s FROM {fts} f JOIN chunks c ON c.id = f.rowid"
            f" WHERE {fts} MATCH ? AND {where} ORDER BY s DESC LIMIT ?",
            [title_boost, query, *params, n + 1],
        )
        complete = len(rows) <= n
        rows = rows[:n]
        return LexicalCandidates([r[0] for r in rows], [float(r[1]) for r in rows], complete)

    def _bm25_dir(self, cid: int) -> Path:
        # beside the collection's dense snapshots, so dropping the collection removes both
        return self.dense.root / f"c{cid}" / "bm25"

    def bm25(self, cid: int) -> Bm25Index:
        """The collection's in-memory BM25 index, current with the database.

        A fresh process loads the index saved at the last full build (postings memory-mapped) and
        replays what changed since from the database, so a restart does not re-read every chunk.
        When the index in memory has fallen too far behind (a bulk ingest by another process),
        a newer save is tried before a rebuild. A missing or damaged file only means a rebuild."""
        with self._bm25_lock, self.db.lock:
            generation = int(self.db.query("SELECT generation FROM collections WHERE id=?", (cid,))[0][0])
            cached = self._bm25.get(cid)
            if cached is not None and cached[0] == generation:
                return cached[1]
            index = None
            if cached is not None and cached[0] < generation:
                index = self._bm25_catch_up(cid, cached[1], cached[0], generation)
            if index is None:
                loaded = Bm25Index.load(self._bm25_dir(cid), self.db.instance_id)
                # never a save newer than the database, nor one older than what was in memory
                if loaded is not None and loaded[0] <= generation and (cached is None or loaded[0] > cached[0]):
                    index = self._bm25_catch_up(cid, loaded[1], loaded[0], generation)
            if index is None:
                rows = self.db.query(f"SELECT rowid, title, body FROM {self._fts(cid)} ORDER BY rowid")
                index = Bm25Index(np.asarray([r[0] for r in rows], dtype=np.int64),
                                  [r[1] for r in rows], [r[2] for r in rows])
                index.save_or_warn(self._bm25_dir(cid), generation, self.db.instance_id)
            self._bm25[cid] = (generation, index)
            return index

    def _bm25_catch_up(self, cid: int, index: Bm25Index, since: int, generation: int) -> Bm25Index | None:
        """``index`` (current at generation ``since``) brought up to date, or None when so much
        changed that a rebuild is due."""
        if since < generation:
            (n_new,) = self.db.query("SELECT count(*) FROM chunks WHERE collection_id=? AND id>?", (cid, index.max_id))[0]
            if index.needs_rebuild(n_new):  # do not replay a bulk load only to throw it away
                return None
            with self.db.transaction():
                new = self.db.query(f"SELECT rowid, title, body FROM {self._fts(cid)} WHERE rowid>? ORDER BY rowid",
                                    (index.max_id,))
                live = self.db.query("SELECT id FROM chunks WHERE collection_id=?", (cid,))
            index.update(np.fromiter((r[0] for r in live), dtype=np.int64, count=len(live)),
                         np.asarray([r[0] for r in new], dtype=np.int64), [r[1] for r in new], [r[2] for r in new])
        return None if index.needs_rebuild() else index

    def fetch(self, collection: str, ids: Sequence[int]) -> dict[int, Hit]:
        if not ids or not self.store.has_collection(collection):
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.query(
            'SELECT id, doc_id, ord, text, title, heading, page, start, "end", metadata, groups FROM chunks'
            f" WHERE collection_id=? AND id IN ({marks})",
            [self._cid(collection), *ids],
        )
        by_id = {
            r[0]: Hit(
                chunk_id=f"{r[1]}#{r[2]}", doc_id=r[1], collection=collection, text=r[3], title=r[4], heading=r[5],
                score=0.0, page=r[6], start=r[7], end=r[8], ord=r[2], metadata=json.loads(r[9]),
                access_groups=tuple(json.loads(r[10])),
            )
            for r in rows
        }
        return by_id

    def count(self, collection: str, flt: Filter | None = None) -> int:
        if not self.store.has_collection(collection):
            return 0
        cid = self._cid(collection)
        if flt is None or flt.empty:
            return int(self.db.query("SELECT count(*) FROM chunks WHERE collection_id=?", (cid,))[0][0])
        where, params = compile_filter(flt)
        return int(self.db.query(f"SELECT count(*) FROM chunks c WHERE c.collection_id=? AND {where}", [cid, *params])[0][0])

    def prepare(self, collection: str) -> None:
        """Catch up (or build) and save the vector snapshot and the BM25 index: after a bulk
        ingestion, the first search and a restarted server's warm-up only load files."""
        if not self.store.has_collection(collection):
            return
        cid = self._cid(collection)
        self.dense.snapshot(cid, self.dim)
        if self.lexical_engine == "memory" and self._has_fts(cid):
            self.bm25(cid)

    def drop(self, collection: str) -> None:
        if not self.store.has_collection(collection):
            return
        cid = self._cid(collection)
        with self.db.transaction():
            self.db.execute(f"DROP TABLE IF EXISTS {self._fts(cid)}_vocab")
            self.db.execute(f"DROP TABLE IF EXISTS {self._fts(cid)}")
            for table in ("chunks", "titles", "tombstones"):
                self.db.execute(f"DELETE FROM {table} WHERE collection_id=?", (cid,))
            self._bump(cid)
        self.dense.invalidate(cid)
        with self._bm25_lock:
            self._bm25.pop(cid, None)

    def chunk_spans(self, collection: str, doc_id: str) -> list[tuple[int, int, int]]:
        """(ord, start, end) of a document's chunks, for parent windows."""
        cid = self._cid(collection)
        return [tuple(r) for r in self.db.query(
            'SELECT ord, start, "end" FROM chunks WHERE collection_id=? AND doc_id=? ORDER BY ord', (cid, doc_id))]
