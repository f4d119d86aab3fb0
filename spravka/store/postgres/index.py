""":class:`~spravka.store.base.SearchIndex` on PostgreSQL: pgvector for dense, full text for lexical.

Dense: two vector fields per chunk (``vec``: the chunk, ``tvec``: its title/heading), each with a
partial HNSW index (cosine) per collection. Candidates are the HNSW top ``n`` of each field; their
union is then scored exactly on both fields and the embedded index's rule picks the result (top
``n`` by content, top ``n`` by content+title z-score, plus ``include``). When the filter allows
few chunks (≤ ``EXACT_MAX``) the search is exact instead: an HNSW scan that drops filtered rows
could return too few. pgvector ≥ 0.8 scans iteratively (``hnsw.iterative_scan``), older ones
fall back to an exact scan when the index returns fewer rows than asked.

ScoreStats (mean/std of each field over every allowed chunk, for z-scores): exact when the
filter allows ≤ ``STATS_SAMPLE`` chunks; otherwise *estimated* on a fixed uniform sample of
``STATS_SAMPLE`` allowed chunks (``sample_key``, random at insert, btree-indexed), which costs
the same at 100k and at 10M chunks. ``count`` is exact (cached until the collection changes).

Lexical: ``lex`` is a ``tsvector`` built from our lemmas (no PostgreSQL parser or dictionary in
between): title terms at weight A, body terms at weight D, with positions, GIN-indexed. Ranking
is the same BM25 as SQLite FTS5's ``bm25()`` (k1=1.2, b=0.75, column weights: a title
occurrence counts ``title_boost`` times, idf = ln((N-df+0.5)/(df+0.5)) floored at 1e-6), with
N, avgdl and df kept exact per collection in ``collections`` and ``lex_terms``, updated in the
same transaction as the chunks. ``lex_terms`` also is the vocabulary for typo expansion.
By default the ranking is computed by an in-memory :class:`~spravka.store.lexical.Bm25Index`
per process, fed from ``title_terms``/``body_terms`` and caught up per generation (the same
scores); the filter is then checked in SQL from the top of the ranking down. The SQL path
(``lexical_engine = "sql"``) scores every chunk matching any query term, so its cost grows with
the number of matching chunks: 660 ms a question at 100k synthetic chunks (docs/scaling.md).
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from spravka.core.filters import Filter
from spravka.core.types import Chunk, Hit
from spravka.store.base import DenseCandidates, IndexRow, LexicalCandidates
from spravka.store.lexical import K1, B, Bm25Index, Vocabulary, VocabularyCache, bm25_idf
from spravka.store.postgres.candidates import STATS_SAMPLE, filter_view, select_dense, stats_of
from spravka.store.postgres.db import PgDatabase, redact
from spravka.store.postgres.documents import PgDocumentStore
from spravka.store.postgres.filters import compile_filter
from spravka.store.sql_documents import strip_nul


def _db_key(url: str) -> str:
    """A folder name per database (host, port, name; never the password)."""
    return "pg-" + hashlib.sha256(redact(url).encode()).hexdigest()[:12]

#: filters allowing at most this many chunks are searched exactly (no HNSW)
EXACT_MAX = 5000
_MAX_POS = 16383  # tsvector positions are capped here


def tsvector_literal(title_terms: Sequence[str], body_terms: Sequence[str]) -> str:
    """``'lemma':1A,4A 'other':2`` – our lemmas as lexemes, title at weight A, body at D."""
    pos: dict[str, list[str]] = {}
    p = 0
    for t in title_terms:
        p += 1
        pos.setdefault(t, []).append(f"{min(p, _MAX_POS)}A")
    for t in body_terms:
        p += 1
        pos.setdefault(t, []).append(str(min(p, _MAX_POS)))
    return " ".join(f"{_quote(t)}:{','.join(dict.fromkeys(v[:256]))}" for t, v in pos.items())


def tsquery_literal(terms: Sequence[str]) -> str:
    return " | ".join(_quote(t) for t in terms)


def _quote(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


class PgSearchIndex:
    def __init__(
        self,
        db: PgDatabase,
        store: PgDocumentStore,
        dim: int,
        *,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        defer_ann: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        self.db = db
        #: where this process saves the in-memory BM25 indexes it builds, so the next process (a
        #: restart, another worker) loads one and replays only the changes (None: never saved)
        self.cache_dir = Path(cache_dir) / _db_key(db.url) if cache_dir is not None else None
        #: bulk loads (``spravka migrate``) skip HNSW maintenance and call ``build_ann`` at the end:
        #: building an HNSW index once is far cheaper than inserting into it row by row
        self.defer_ann = defer_ann
        self.store = store
        self.dim = dim
        self.hnsw = (hnsw_m, hnsw_ef_construction)
        self.iterative = db.vector_version >= (0, 8)
        self._indexed: set[int] = set()
        self._vocab = VocabularyCache()
        self._counts: OrderedDict[tuple, int] = OrderedDict()
        self._lock = threading.Lock()
        #: "memory" (default): BM25 scored by an in-memory index (:class:`Bm25Index`) fed from
        #: ``title_terms``/``body_terms`` and caught up per generation, filters applied in SQL
        #: from the top of the ranking down; "sql": scored in SQL over ``lex`` (no memory held,
        #: but every matching chunk is scored per query: slow on common terms at 100k+)
        self.lexical_engine = "memory"
        self._bm25: dict[int, tuple[int, Bm25Index]] = {}
        self._bm25_lock = threading.Lock()

    # ---- collections ---------------------------------------------------------------------------
    def _state(self, collection: str) -> tuple[int, int, int, int] | None:
        """(id, generation, rows, terms) of a collection, or None."""
        rows = self.db.query(
            "SELECT id, generation, n_rows, n_terms FROM collections WHERE name=%s", (collection,)
        )
        return tuple(int(x) for x in rows[0]) if rows else None  # type: ignore[return-value]

    def build_ann(self, collection: str) -> None:
        """Create the collection's HNSW indexes now (after a bulk load with ``defer_ann``)."""
        state = self._state(collection)
        if state is None:
            return
        self._indexed.discard(state[0])
        with self.db.transaction() as conn:
            conn.execute("SELECT set_config('maintenance_work_mem', '1GB', true)")
            conn.execute("SELECT set_config('max_parallel_maintenance_workers', '2', true)")
            self._ensure_indexes(state[0], force=True)

    def _ensure_indexes(self, cid: int, force: bool = False) -> None:
        if cid in self._indexed or (self.defer_ann and not force):
            return
        m, efc = self.hnsw
        for kind, extra in (("vec", ""), ("tvec", " AND tvec IS NOT NULL")):
            if self.db.query(f"SELECT to_regclass('chunks_{kind}_c{cid}')")[0][0] is not None:
                continue  # (CREATE INDEX IF NOT EXISTS would still lock the table first)
            self.db.execute(
                f"CREATE INDEX IF NOT EXISTS chunks_{kind}_c{cid} ON chunks USING hnsw (({kind}::vector({self.dim}))"
                f" vector_cosine_ops) WITH (m = {m}, ef_construction = {efc}) WHERE collection_id = {cid}{extra}"
            )
        self._indexed.add(cid)

    # ---- writes --------------------------------------------------------------------------------
    def replace_document(self, collection: str, doc_id: str, rows: Sequence[IndexRow]) -> None:
        for row in rows:
            if row.vector.shape != (self.dim,):
                raise ValueError(f"vector of dim {row.vector.shape} for an index of dim {self.dim}")
        with self.db.transaction() as conn:
            cid = self.store.collection_id(collection, create=True)
            self._ensure_indexes(cid)
            delta, d_rows, d_terms = self._remove(conn, cid, [doc_id])
            params = []
            for row in rows:
                c = row.chunk
                tt, bt = row.title_terms.split(), row.body_terms.split()
                delta.update(set(tt) | set(bt))
                d_rows += 1
                d_terms += len(tt) + len(bt)
                params.append(
                    (
                        cid,
                        doc_id,
                        c.ord,
                        strip_nul(c.text),
                        c.title,
                        c.heading,
                        c.page,
                        c.start,
                        c.end,
                        c.tokens,
                        np.asarray(row.vector, dtype=np.float32),
                        _title_vec(row.title_vector),
                        row.title_hash,
                        Jsonb(row.metadata),
                        Jsonb(filter_view(row.metadata)),
                        list(row.groups),
                        row.title_terms,
                        row.body_terms,
                        tsvector_literal(tt, bt),
                        len(tt) + len(bt),
                    )
                )
            if params:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO chunks(collection_id, doc_id, ord, text, title, heading, page, start_pos, end_pos,"
                        " tokens, vec, tvec, title_hash, metadata, fmeta, groups, title_terms, body_terms, lex, n_terms)"
                        " VALUES(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::tsvector,%s)",
                        params,
                    )
            self._commit_stats(conn, cid, delta, d_rows, d_terms)

    def _remove(self, conn: Any, cid: int, doc_ids: list[str]) -> tuple[Counter, int, int]:
        delta: Counter = Counter()
        old = conn.execute(
            "DELETE FROM chunks WHERE collection_id=%s AND doc_id = ANY(%s) RETURNING title_terms, body_terms",
            (cid, doc_ids),
        ).fetchall()
        d_terms = 0
        for tt, bt in old:
            terms = tt.split() + bt.split()
            delta.subtract(set(terms))
            d_terms -= len(terms)
        return delta, -len(old), d_terms

    def _commit_stats(self, conn: Any, cid: int, delta: Counter, d_rows: int, d_terms: int) -> None:
        changes = sorted((t, d) for t, d in delta.items() if d)
        if changes:
            # Sorted: concurrent writers lock shared term rows in the same order (no deadlocks).
            conn.execute(
                "INSERT INTO lex_terms(collection_id, term, df) SELECT %s, t, d FROM unnest(%s::text[], %s::bigint[])"
                " AS x(t, d) ORDER BY t ON CONFLICT (collection_id, term) DO UPDATE SET df = lex_terms.df + excluded.df",
                (cid, [t for t, _ in changes], [d for _, d in changes]),
            )
        conn.execute(
            "UPDATE collections SET generation = generation + 1, n_rows = n_rows + %s, n_terms = n_terms + %s"
            " WHERE id = %s",
            (d_rows, d_terms, cid),
        )

    def delete_documents(self, collection: str, doc_ids: Iterable[str]) -> None:
        doc_ids = list(doc_ids)
        state = self._state(collection)
        if state is None or not doc_ids:
            return
        with self.db.transaction() as conn:
            delta, d_rows, d_terms = self._remove(conn, state[0], doc_ids)
            self._commit_stats(conn, state[0], delta, d_rows, d_terms)

    def prepare(self, collection: str) -> None:
        """Build and save the collection's BM25 index when a cache folder is set, so neither the
        first search of a fresh process nor a restart pays for the build; the server keeps its own
        indexes (HNSW, ``lex``) as rows are written."""
        state = self._state(collection)
        if state is not None and self.cache_dir is not None and self.lexical_engine == "memory":
            self.bm25(state[0], state[1])

    def drop(self, collection: str) -> None:
        state = self._state(collection)
        if state is None:
            return
        cid = state[0]
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM chunks WHERE collection_id=%s", (cid,))
            conn.execute("DELETE FROM lex_terms WHERE collection_id=%s", (cid,))
            for kind in ("vec", "tvec"):
                conn.execute(f"DROP INDEX IF EXISTS chunks_{kind}_c{cid}")
            conn.execute(
                "UPDATE collections SET generation = generation + 1, n_rows = 0, n_terms = 0 WHERE id=%s",
                (cid,),
            )
        self._indexed.discard(cid)
        with self._bm25_lock:
            self._bm25.pop(cid, None)
            if self.cache_dir is not None:
                shutil.rmtree(self.cache_dir / f"c{cid}", ignore_errors=True)
        self._vocab.drop(cid)

    # ---- dense ---------------------------------------------------------------------------------
    def _allowed(self, cid: int, generation: int, flt: Filter, where: str, params: dict) -> int:
        key = (cid, generation, flt)
        with self._lock:
            if key in self._counts:
                return self._counts[key]
        n = int(
            self.db.query(f"SELECT count(*) FROM chunks c WHERE c.collection_id = {cid} AND {where}", params)[
                0
            ][0]
        )
        with self._lock:
            self._counts[key] = n
            while len(self._counts) > 512:
                self._counts.popitem(last=False)
        return n

    def search_dense(
        self,
        collection: str,
        vector: np.ndarray,
        n: int,
        flt: Filter,
        title_weight: float = 1.0,
        include: Sequence[int] = (),
    ) -> DenseCandidates:
        state = self._state(collection)
        if state is None:
            return DenseCandidates([], [], [])
        cid, generation, total, _ = state
        where, params = compile_filter(flt)
        allowed = total if flt.empty else self._allowed(cid, generation, flt, where, params)
        if allowed == 0:
            return DenseCandidates([], [], [])
        q = np.asarray(vector, dtype=np.float32)
        params = {**params, "q": q, "k": n}
        scope = f"c.collection_id = {cid} AND {where}"
        exact = allowed <= EXACT_MAX
        with self.db.transaction() as conn:
            conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(min(1000, max(40, 2 * n))),))
            if self.iterative:
                conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            found: set[int] = set()
            for field, extra in (("vec", ""), ("tvec", " AND c.tvec IS NOT NULL")):
                got = self._nearest(conn, field, scope + extra, params, exact)
                if not exact and len(got) < min(n, allowed) and field == "vec":
                    got = self._nearest(conn, field, scope + extra, params, True)  # HNSW filtered too much
                found.update(got)
            found.update(int(i) for i in include)
            rows = conn.execute(
                f"SELECT c.id, 1 - (c.vec <=> %(q)s), coalesce(1 - (c.tvec <=> %(q)s), 0) FROM chunks c"
                f" WHERE c.id = ANY(%(ids)s) AND {scope}",
                {**params, "ids": sorted(found)},
            ).fetchall()
            sample = conn.execute(
                f"SELECT 1 - (c.vec <=> %(q)s), coalesce(1 - (c.tvec <=> %(q)s), 0) FROM chunks c WHERE {scope}"
                f" ORDER BY c.sample_key LIMIT {STATS_SAMPLE}",
                params,
            ).fetchall()
        s = np.asarray(sample, dtype=np.float64).reshape(-1, 2)
        cs, ts = stats_of(s[:, 0], allowed), stats_of(s[:, 1], allowed)
        ids = [int(r[0]) for r in rows]
        content = np.asarray([float(r[1]) for r in rows], dtype=np.float64)
        title = np.asarray([float(r[2]) for r in rows], dtype=np.float64)
        return select_dense(ids, content, title, n, title_weight, cs, ts, include)

    def _nearest(self, conn: Any, field: str, scope: str, params: dict, exact: bool) -> list[int]:
        # The typed cast matches the partial HNSW index; the bare column forces an exact scan.
        expr = f"c.{field}" if exact else f"(c.{field}::vector({self.dim}))"
        return [
            int(r[0])
            for r in conn.execute(
                f"SELECT c.id FROM chunks c WHERE {scope} ORDER BY {expr} <=> %(q)s LIMIT %(k)s", params
            ).fetchall()
        ]

    # ---- lexical -------------------------------------------------------------------------------
    def vocabulary(self, cid: int, generation: int) -> Vocabulary:
        return self._vocab.get(cid, generation, lambda: [
            r[0] for r in self.db.query("SELECT term FROM lex_terms WHERE collection_id=%s AND df > 0", (cid,))])

    def search_lexical(
        self,
        collection: str,
        terms: Sequence[str],
        n: int,
        flt: Filter,
        title_boost: float = 2.0,
        fuzzy: bool = True,
    ) -> LexicalCandidates:
        state = self._state(collection)
        if not terms or state is None or state[2] == 0:
            return LexicalCandidates([], [])
        cid, generation, n_rows, n_terms = state
        if fuzzy:
            terms = self.vocabulary(cid, generation).expand(terms)
        uniq = list(dict.fromkeys(t for t in terms if t))
        if self.lexical_engine == "memory":
            return self._lexical_in_memory(cid, generation, uniq, n, flt, title_boost)
        dfs = dict(
            self.db.query(
                "SELECT term, df FROM lex_terms WHERE collection_id=%s AND term = ANY(%s) AND df > 0",
                (cid, uniq),
            )
        )
        present = [t for t in uniq if t in dfs]
        if not present:
            return LexicalCandidates([], [])
        where, params = compile_filter(flt)
        params.update(
            {
                "terms": present,
                "idfs": [bm25_idf(n_rows, int(dfs[t])) for t in present],
                "tsq": tsquery_literal(present),
                "boost": float(title_boost),
                "avgdl": max(n_terms / n_rows, 1e-9),
                "lim": n + 1,
            }
        )
        rows = self.db.query(
            "SELECT c.id, sum(q.idf * (x.f * %(k1p)s) / (x.f + %(k1)s * (1 - %(b)s + %(b)s * c.n_terms / %(avgdl)s))) AS s"
            " FROM chunks c"
            " CROSS JOIN LATERAL (SELECT u.lexeme, %(boost)s * cardinality(array_positions(u.weights, 'A'))"
            "   + cardinality(array_positions(u.weights, 'D')) AS f FROM unnest(c.lex) u"
            "   WHERE u.lexeme = ANY(%(terms)s)) x"
            " JOIN unnest(%(terms)s::text[], %(idfs)s::float8[]) AS q(term, idf) ON q.term = x.lexeme"
            f" WHERE c.collection_id = {cid} AND c.lex @@ %(tsq)s::tsquery AND {where}"
            " GROUP BY c.id ORDER BY s DESC, c.id LIMIT %(lim)s",
            {**params, "k1p": K1 + 1, "k1": K1, "b": B},
        )
        complete = len(rows) <= n
        rows = rows[:n]
        return LexicalCandidates([int(r[0]) for r in rows], [float(r[1]) for r in rows], complete)

    def _lexical_in_memory(
        self, cid: int, generation: int, terms: list[str], n: int, flt: Filter, title_boost: float
    ) -> LexicalCandidates:
        ids, scores = self.bm25(cid, generation).ranked(terms, title_boost)
        if flt.empty:
            return LexicalCandidates([int(i) for i in ids[:n]], [float(x) for x in scores[:n]], len(ids) <= n)
        # The filter stays in SQL (one definition of its semantics): check the ranking from the
        # top down in growing slices until n + 1 allowed chunks are found or the ranking ends.
        where, params = compile_filter(flt)
        keep: list[int] = []
        start, size = 0, max(4 * (n + 1), 256)
        while start < len(ids) and len(keep) <= n:
            part = ids[start : start + size]
            allowed = {int(r[0]) for r in self.db.query(
                f"SELECT c.id FROM chunks c WHERE c.id = ANY(%(ids)s) AND {where}", {**params, "ids": part.tolist()})}
            keep += [start + j for j, i in enumerate(part.tolist()) if i in allowed]
            start, size = start + size, size * 4
        complete = len(keep) <= n
        keep = keep[:n]
        return LexicalCandidates([int(ids[j]) for j in keep], [float(scores[j]) for j in keep], complete)

    def _bm25_saved(self, cid: int) -> tuple[Path, str] | None:
        """Where a collection's BM25 index is saved, and the owner tag that a saved copy must carry:
        the ``collections`` table's oid (new whenever the schema or the database is re-created)
        and the collection's id and creation time."""
        if self.cache_dir is None:
            return None
        row = self.db.query(
            "SELECT 'collections'::regclass::oid::bigint, created_at FROM collections WHERE id=%s", (cid,))
        return (self.cache_dir / f"c{cid}" / "bm25", f"{row[0][0]}:{cid}@{row[0][1]}") if row else None

    def bm25(self, cid: int, generation: int) -> Bm25Index:
        """This process's in-memory BM25 index of a collection, current at ``generation`` or later.

        A fresh process, or one so far behind that it would rebuild, starts from the saved copy
        when there is one (postings memory-mapped) and replays what changed since. Catching up
        diffs id sets rather than reading ids above the last one seen: under concurrent writers a
        sequence value can commit after a larger one, and it must not be missed."""
        with self._bm25_lock:
            cached = self._bm25.get(cid)
            if cached is not None and cached[0] >= generation:
                return cached[1]
            live = np.asarray([r[0] for r in self.db.query(
                "SELECT id FROM chunks WHERE collection_id=%s ORDER BY id", (cid,))], dtype=np.int64)

            def caught_up(index: Bm25Index) -> Bm25Index | None:
                new = np.setdiff1d(live, index.ids, assume_unique=True)
                if index.needs_rebuild(len(new)):
                    return None
                rows = self.db.query(
                    "SELECT id, title_terms, body_terms FROM chunks WHERE id = ANY(%s) ORDER BY id", (new.tolist(),))
                index.update(live, np.asarray([r[0] for r in rows], dtype=np.int64),
                             [r[1] for r in rows], [r[2] for r in rows])
                return None if index.needs_rebuild() else index  # deletions show only after the update

            index = caught_up(cached[1]) if cached is not None else None
            saved = self._bm25_saved(cid) if index is None else None
            if saved is not None and (loaded := Bm25Index.load(*saved)) is not None:
                index = caught_up(loaded[1])
            if index is None:
                rows = self.db.query(
                    "SELECT id, title_terms, body_terms FROM chunks WHERE collection_id=%s ORDER BY id", (cid,))
                index = Bm25Index(np.asarray([r[0] for r in rows], dtype=np.int64),
                                  [r[1] for r in rows], [r[2] for r in rows])
                if saved is not None:
                    index.save_or_warn(saved[0], generation, saved[1])
            self._bm25[cid] = (generation, index)
            return index

    # ---- reads ---------------------------------------------------------------------------------
    def fetch(self, collection: str, ids: Sequence[int]) -> dict[int, Hit]:
        if not ids:
            return {}
        rows = self.db.query(
            "SELECT c.id, c.doc_id, c.ord, c.text, c.title, c.heading, c.page, c.start_pos, c.end_pos, c.metadata,"
            " c.groups FROM chunks c JOIN collections k ON k.id = c.collection_id WHERE k.name=%s AND c.id = ANY(%s)",
            (collection, [int(i) for i in ids]),
        )
        return {
            int(r[0]): Hit(
                chunk_id=f"{r[1]}#{r[2]}",
                doc_id=r[1],
                collection=collection,
                text=r[3],
                title=r[4],
                heading=r[5],
                score=0.0,
                page=r[6],
                start=r[7],
                end=r[8],
                ord=r[2],
                metadata=dict(r[9]),
                access_groups=tuple(r[10]),
            )
            for r in rows
        }

    def count(self, collection: str, flt: Filter | None = None) -> int:
        state = self._state(collection)
        if state is None:
            return 0
        if flt is None or flt.empty:
            return state[2]
        where, params = compile_filter(flt)
        return self._allowed(state[0], state[1], flt, where, params)

    def chunk_spans(self, collection: str, doc_id: str) -> list[tuple[int, int, int]]:
        """(ord, start, end) of a document's chunks, for parent windows."""
        return [
            tuple(r)
            for r in self.db.query(
                "SELECT c.ord, c.start_pos, c.end_pos FROM chunks c JOIN collections k ON k.id = c.collection_id"
                " WHERE k.name=%s AND c.doc_id=%s ORDER BY c.ord",
                (collection, doc_id),
            )
        ]

    def export_document(self, collection: str, doc_id: str) -> list[IndexRow]:
        """A document's rows exactly as written (for ``spravka migrate``)."""
        rows = self.db.query(
            "SELECT c.ord, c.text, c.title, c.heading, c.page, c.start_pos, c.end_pos, c.tokens, c.vec, c.tvec,"
            " c.title_hash, c.title_terms, c.body_terms, c.metadata, c.groups FROM chunks c"
            " JOIN collections k ON k.id = c.collection_id WHERE k.name=%s AND c.doc_id=%s ORDER BY c.ord",
            (collection, doc_id),
        )
        out = []
        for r in rows:
            chunk = Chunk(
                doc_id=doc_id,
                ord=r[0],
                text=r[1],
                title=r[2],
                heading=r[3],
                page=r[4],
                start=r[5],
                end=r[6],
                tokens=r[7],
            )
            tvec = np.asarray(r[9], dtype=np.float32) if r[9] is not None else None
            out.append(
                IndexRow(
                    chunk,
                    np.asarray(r[8], dtype=np.float32),
                    tvec,
                    r[10],
                    r[11],
                    r[12],
                    dict(r[13]),
                    tuple(r[14]),
                )
            )
        return out


def _title_vec(v: np.ndarray | None) -> np.ndarray | None:
    """A missing (or all-zero) title vector is NULL: cosine with a zero vector is NaN in pgvector."""
    if v is None:
        return None
    v = np.asarray(v, dtype=np.float32)
    return v if float(np.abs(v).sum()) > 0 else None
