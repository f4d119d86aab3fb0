""":class:`~spravka.store.base.SearchIndex` on Milvus (a server, or Milvus Lite for a local file).

One Milvus collection per Spravka collection, with two dense fields (``vec``: the chunk,
``tvec``: its title/heading; cosine) and a BM25 sparse field that Milvus computes itself from
``lex``, a VARCHAR of our lemmas (the ``standard`` analyzer only splits on spaces and lowers
case: the lemmatisation is ours). Milvus keeps the BM25 statistics (N, avgdl, df) server-side.
The title column is weighted by repeating the title lemmas ``TITLE_REPEAT`` times in ``lex``,
fixed when written (``title_boost`` at query time is ignored).

Writes are idempotent: a chunk's primary key is a hash of (collection, document, ord), so
``replace_document`` upserts the new chunks and deletes the document's chunks past the new
count. A crash between the Milvus write and the SQLite commit leaves Milvus ahead; the re-run
rewrites the same keys. Filter facets and the typo-expansion vocabulary live in the SQLite side
database, written inside the caller's transaction, union-only (see :mod:`.filters`).

Dense candidates: the ANN top ``n`` of each field, scored exactly on both fields from their
vectors (fetched by id), then picked like the embedded index. ScoreStats come from a fixed
uniform sample of ``STATS_SAMPLE`` allowed chunks (``sample_key``), exact when the filter allows
fewer; the sample's vectors are cached per filter until the collection changes.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from spravka.core.errors import ConfigError, InputError, StoreError
from spravka.core.filters import Filter
from spravka.core.types import Chunk, Hit
from spravka.store.base import DenseCandidates, IndexRow, LexicalCandidates
from spravka.store.lexical import Vocabulary, VocabularyCache
from spravka.store.milvus.config import MilvusConfig
from spravka.store.milvus.filters import (
    NOTHING,
    Facets,
    compile_expr,
    facet_rows,
    facets_from_rows,
    literal,
    needs_facets,
    row_tokens,
)
from spravka.store.postgres.candidates import STATS_SAMPLE, filter_view, select_dense, stats_of
from spravka.store.sqlite.documents import SqliteDocumentStore

TITLE_REPEAT = 2
_BATCH = 1000
_MAX_TOKENS = 4096
_OUT = ["id", "doc_id", "ord", "text", "title", "heading", "page", "start", "end", "metadata", "groups"]
_SIDE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS milvus_terms(collection TEXT NOT NULL, term TEXT NOT NULL,"
    " PRIMARY KEY(collection, term)) WITHOUT ROWID",
    # chunks per document: stale chunks are deleted by primary key, not by a filter scan
    "CREATE TABLE IF NOT EXISTS milvus_docs(collection TEXT NOT NULL, doc_id TEXT NOT NULL, n INTEGER NOT NULL,"
    " PRIMARY KEY(collection, doc_id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS milvus_facets(collection TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,"
    " value TEXT NOT NULL, PRIMARY KEY(collection, kind, key, value)) WITHOUT ROWID",
)


_LITE_LOCK = threading.Lock()
_LITE_USERS: dict[str, int] = {}


def chunk_key(collection: str, doc_id: str, ord_: int) -> int:
    """Stable non-negative 63-bit primary key of a chunk."""
    digest = hashlib.blake2b(f"{collection}\x00{doc_id}\x00{ord_}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & (2**63 - 1)


def _fit(s: str, max_bytes: int) -> str:
    b = s.encode()
    return s if len(b) <= max_bytes else b[:max_bytes].decode(errors="ignore")


class MilvusSearchIndex:
    def __init__(
        self, config: MilvusConfig, store: SqliteDocumentStore, dim: int, client: Any = None
    ) -> None:
        try:
            from pymilvus import DataType, Function, FunctionType, MilvusClient, MilvusException
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ConfigError(
                "the Milvus backend needs the 'milvus' extra", hint="pip install 'spravka[milvus]'"
            ) from e
        self._t = (DataType, Function, FunctionType)
        self._error = MilvusException
        self.config = config
        self.store = store
        self.db = store.db
        self.dim = dim
        self._owns_client = client is None
        try:
            self.client = client or MilvusClient(uri=config.uri, token=config.token, db_name=config.db_name)
        except Exception as e:  # noqa: BLE001 - pymilvus raises several unrelated types here
            hint = "Milvus Lite allows one process per file: stop the other one" if config.lite else None
            raise StoreError(f"cannot connect to Milvus at {config.uri}: {e}", hint=hint) from e
        if self._owns_client and config.lite:
            with _LITE_LOCK:
                _LITE_USERS[config.uri] = _LITE_USERS.get(config.uri, 0) + 1
        with self.db.transaction():
            for stmt in _SIDE_SCHEMA:
                self.db.execute(stmt)
        self._loaded: set[str] = set()
        self._lock = threading.Lock()
        self._counts: OrderedDict[tuple, int] = OrderedDict()
        self._samples: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._facets: dict[str, tuple[int, Facets]] = {}
        self._vocab = VocabularyCache()

    # ---- names and collections -----------------------------------------------------------------
    def name(self, collection: str) -> str:
        slug = re.sub(r"[^A-Za-z0-9_]", "_", collection)[:40]
        h = hashlib.blake2b(collection.encode(), digest_size=4).hexdigest()
        return f"{self.config.prefix}_{slug}_{h}"

    def _exists(self, collection: str) -> str | None:
        name = self.name(collection)
        if name in self._loaded:
            return name
        if not self.client.has_collection(name):
            return None
        self.client.load_collection(name)
        self._loaded.add(name)
        return name

    def _ensure(self, collection: str) -> str:
        name = self._exists(collection)
        if name is not None:
            return name
        name = self.name(collection)
        DataType, Function, FunctionType = self._t
        s = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("doc_id", DataType.VARCHAR, max_length=4096)
        s.add_field("ord", DataType.INT64)
        s.add_field("text", DataType.VARCHAR, max_length=65535)
        s.add_field("title", DataType.VARCHAR, max_length=4096)
        s.add_field("heading", DataType.VARCHAR, max_length=4096)
        s.add_field("page", DataType.INT64)
        s.add_field("start", DataType.INT64)
        s.add_field("end", DataType.INT64)
        s.add_field("tokens", DataType.INT64)
        s.add_field("vec", DataType.FLOAT_VECTOR, dim=self.dim)
        s.add_field("tvec", DataType.FLOAT_VECTOR, dim=self.dim)
        s.add_field("title_hash", DataType.VARCHAR, max_length=128)
        s.add_field("metadata", DataType.JSON)
        s.add_field(
            "fkv", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=_MAX_TOKENS, max_length=512
        )
        s.add_field("groups", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=256, max_length=256)
        s.add_field("title_terms", DataType.VARCHAR, max_length=65535)
        s.add_field("body_terms", DataType.VARCHAR, max_length=65535)
        s.add_field(
            "lex",
            DataType.VARCHAR,
            max_length=65535,
            enable_analyzer=True,
            analyzer_params={"tokenizer": "standard", "filter": ["lowercase"]},
        )
        s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        s.add_field("sample_key", DataType.FLOAT)
        s.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["lex"],
                output_field_names=["sparse"],
            )
        )
        ip = self.client.prepare_index_params()
        for f in ("vec", "tvec"):
            if self.config.lite:  # Milvus Lite offers FLAT/IVF_FLAT/AUTOINDEX only
                ip.add_index(f, index_type="AUTOINDEX", metric_type="COSINE")
            else:
                ip.add_index(
                    f, index_type="HNSW", metric_type="COSINE", params={"M": 16, "efConstruction": 200}
                )
        ip.add_index(
            "sparse",
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            params={"bm25_k1": 1.2, "bm25_b": 0.75},
        )
        if not self.config.lite:
            for f in ("doc_id", "fkv", "groups"):
                ip.add_index(f, index_type="INVERTED")
        self.client.create_collection(name, schema=s, index_params=ip, consistency_level="Strong")
        self.client.load_collection(name)
        self._loaded.add(name)
        return name

    def _generation(self, collection: str) -> int:
        row = self.db.query("SELECT generation FROM collections WHERE name=?", (collection,))
        return int(row[0][0]) if row else -1

    def _bump(self, collection: str) -> None:
        self.db.execute("UPDATE collections SET generation = generation + 1 WHERE name=?", (collection,))

    def _query(self, name: str, expr: str, fields: list[str], limit: int | None = None) -> list[dict]:
        kw: dict[str, Any] = {"filter": expr, "output_fields": fields}
        if limit is not None:
            kw["limit"] = limit
        try:
            return list(self.client.query(name, **kw))
        except self._error as e:
            # Milvus Lite 2.5 reports an empty result of a query as this error.
            if "Unsupported data type" in str(e):
                return []
            raise

    # ---- writes --------------------------------------------------------------------------------
    def replace_document(self, collection: str, doc_id: str, rows: Sequence[IndexRow]) -> None:
        self.replace_documents(collection, [(doc_id, rows)])

    def replace_documents(self, collection: str, docs: Sequence[tuple[str, Sequence[IndexRow]]]) -> None:
        """``replace_document`` for many documents in one round of Milvus calls (bulk loads)."""
        entities = []
        facet: set[tuple[str, str, str]] = set()
        terms: set[str] = set()
        counts: dict[str, int] = {}
        zeros = [0.0] * self.dim
        for doc_id, rows in docs:
            counts[doc_id] = len(rows)
            for row in rows:
                if row.vector.shape != (self.dim,):
                    raise ValueError(f"vector of dim {row.vector.shape} for an index of dim {self.dim}")
                c = row.chunk
                view = filter_view(row.metadata)
                tokens = row_tokens(view)
                if len(tokens) > _MAX_TOKENS:
                    raise InputError(
                        f"document '{doc_id}' has too many metadata values for Milvus ({len(tokens)})"
                    )
                facet.update(facet_rows(view))
                terms.update(row.title_terms.split())
                terms.update(row.body_terms.split())
                tvec = row.title_vector
                entities.append(
                    {
                        "id": chunk_key(collection, doc_id, c.ord),
                        "doc_id": doc_id,
                        "ord": c.ord,
                        "text": _fit(c.text, 65535),
                        "title": _fit(c.title, 4096),
                        "heading": _fit(c.heading, 4096),
                        "page": -1 if c.page is None else c.page,
                        "start": c.start,
                        "end": c.end,
                        "tokens": c.tokens,
                        "vec": np.asarray(row.vector, dtype=np.float32).tolist(),
                        "tvec": np.asarray(tvec, dtype=np.float32).tolist() if tvec is not None else zeros,
                        "title_hash": row.title_hash[:128],
                        "metadata": row.metadata,
                        "fkv": tokens,
                        "groups": list(row.groups),
                        "title_terms": _fit(row.title_terms, 65535),
                        "body_terms": _fit(row.body_terms, 65535),
                        "lex": _fit(
                            " ".join([row.title_terms] * TITLE_REPEAT + [row.body_terms]).strip(), 65535
                        ),
                        "sample_key": random.random(),
                    }
                )
        with self.db.transaction():
            self.store.collection_id(collection, create=True)
            name = self._ensure(collection)
            if facet:
                self.db.conn.executemany(
                    "INSERT OR IGNORE INTO milvus_facets VALUES(?,?,?,?)", [(collection, *f) for f in facet]
                )
            if terms:
                self.db.conn.executemany(
                    "INSERT OR IGNORE INTO milvus_terms VALUES(?,?)", [(collection, t) for t in terms]
                )
            stale: list[int] = []
            for doc_id, n in counts.items():
                old = self.db.query(
                    "SELECT n FROM milvus_docs WHERE collection=? AND doc_id=?", (collection, doc_id)
                )
                stale += [chunk_key(collection, doc_id, o) for o in range(n, int(old[0][0]) if old else 0)]
            for i in range(0, len(entities), _BATCH):
                self.client.upsert(name, entities[i : i + _BATCH])
            for i in range(0, len(stale), _BATCH):
                self.client.delete(name, ids=stale[i : i + _BATCH])
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO milvus_docs VALUES(?,?,?)",
                [(collection, d, n) for d, n in counts.items() if n],
            )
            self.db.conn.executemany(
                "DELETE FROM milvus_docs WHERE collection=? AND doc_id=?",
                [(collection, d) for d, n in counts.items() if not n],
            )
            self._bump(collection)

    def delete_documents(self, collection: str, doc_ids: Iterable[str]) -> None:
        doc_ids = list(doc_ids)
        name = self._exists(collection)
        if name is None or not doc_ids:
            return
        with self.db.transaction():
            for i in range(0, len(doc_ids), 500):
                part = doc_ids[i : i + 500]
                self.client.delete(name, filter=f"doc_id in [{', '.join(literal(d) for d in part)}]")
                marks = ",".join("?" * len(part))
                self.db.execute(
                    f"DELETE FROM milvus_docs WHERE collection=? AND doc_id IN ({marks})", [collection, *part]
                )
            self._bump(collection)

    def prepare(self, collection: str) -> None:
        """Nothing to do: the server maintains its indexes as rows are written."""

    def drop(self, collection: str) -> None:
        name = self.name(collection)
        if self.client.has_collection(name):
            self.client.drop_collection(name)
        self._loaded.discard(name)
        with self.db.transaction():
            self.db.execute("DELETE FROM milvus_facets WHERE collection=?", (collection,))
            self.db.execute("DELETE FROM milvus_terms WHERE collection=?", (collection,))
            self.db.execute("DELETE FROM milvus_docs WHERE collection=?", (collection,))
            self._bump(collection)
        self._facets.pop(collection, None)
        self._vocab.drop(collection)

    # ---- filters -------------------------------------------------------------------------------
    def _expr(self, collection: str, generation: int, flt: Filter) -> str | None:
        facets = None
        if needs_facets(flt):
            cached = self._facets.get(collection)
            if cached is None or cached[0] != generation:
                rows = self.db.query(
                    "SELECT kind, key, value FROM milvus_facets WHERE collection=?", (collection,)
                )
                cached = (generation, facets_from_rows(rows))
                self._facets[collection] = cached
            facets = cached[1]
        return compile_expr(flt, facets)

    def _count(self, name: str, generation: int, flt: Filter, expr: str) -> int:
        key = (name, generation, flt)
        with self._lock:
            if key in self._counts:
                return self._counts[key]
        rows = self._query(name, expr, ["count(*)"])
        n = int(rows[0]["count(*)"]) if rows else 0
        with self._lock:
            self._counts[key] = n
            while len(self._counts) > 512:
                self._counts.popitem(last=False)
        return n

    def count(self, collection: str, flt: Filter | None = None) -> int:
        name = self._exists(collection)
        if name is None:
            return 0
        flt = flt or Filter()
        generation = self._generation(collection)
        expr = self._expr(collection, generation, flt)
        return 0 if expr is None else self._count(name, generation, flt, expr)

    # ---- dense ---------------------------------------------------------------------------------
    def _sample(
        self, name: str, generation: int, flt: Filter, expr: str, allowed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        key = (name, generation, flt)
        with self._lock:
            hit = self._samples.get(key)
        if hit is not None:
            return hit
        if allowed > STATS_SAMPLE:
            cut = f"sample_key < {min(1.0, 1.25 * STATS_SAMPLE / allowed):.6f}"
            expr = f"({expr}) and {cut}" if expr else cut
        rows = self._query(name, expr, ["vec", "tvec"], limit=STATS_SAMPLE)
        vecs = np.asarray([r["vec"] for r in rows], dtype=np.float32).reshape(-1, self.dim)
        tvecs = np.asarray([r["tvec"] for r in rows], dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            self._samples[key] = (vecs, tvecs)
            while len(self._samples) > 8:
                self._samples.popitem(last=False)
        return vecs, tvecs

    def search_dense(
        self,
        collection: str,
        vector: np.ndarray,
        n: int,
        flt: Filter,
        title_weight: float = 1.0,
        include: Sequence[int] = (),
    ) -> DenseCandidates:
        name = self._exists(collection)
        if name is None:
            return DenseCandidates([], [], [])
        generation = self._generation(collection)
        expr = self._expr(collection, generation, flt)
        if expr is None:
            return DenseCandidates([], [], [])
        allowed = self._count(name, generation, flt, expr)
        if allowed == 0:
            return DenseCandidates([], [], [])
        q = np.asarray(vector, dtype=np.float32)
        found: set[int] = {int(i) for i in include}
        limit = min(n, 16384)
        for field in ("vec", "tvec"):
            res = self.client.search(
                name,
                data=[q.tolist()],
                anns_field=field,
                limit=limit,
                filter=expr,
                output_fields=["id"],
                search_params={"metric_type": "COSINE", "params": {"ef": max(64, 2 * limit)}},
            )
            found.update(int(h["id"]) for h in res[0])
        ids_expr = f"id in [{', '.join(str(i) for i in sorted(found))}]"
        rows = self._query(name, f"({expr}) and {ids_expr}" if expr else ids_expr, ["id", "vec", "tvec"])
        ids = [int(r["id"]) for r in rows]
        vecs = np.asarray([r["vec"] for r in rows], dtype=np.float32).reshape(-1, self.dim)
        tvecs = np.asarray([r["tvec"] for r in rows], dtype=np.float32).reshape(-1, self.dim)
        sv, st = self._sample(name, generation, flt, expr, allowed)
        cs, ts = (
            stats_of((sv @ q).astype(np.float64), allowed),
            stats_of((st @ q).astype(np.float64), allowed),
        )
        return select_dense(
            ids,
            (vecs @ q).astype(np.float64),
            (tvecs @ q).astype(np.float64),
            n,
            title_weight,
            cs,
            ts,
            include,
        )

    # ---- lexical -------------------------------------------------------------------------------
    def vocabulary(self, collection: str, generation: int) -> Vocabulary:
        return self._vocab.get(collection, generation, lambda: [
            r[0] for r in self.db.query("SELECT term FROM milvus_terms WHERE collection=?", (collection,))])

    def search_lexical(
        self,
        collection: str,
        terms: Sequence[str],
        n: int,
        flt: Filter,
        title_boost: float = 2.0,
        fuzzy: bool = True,
    ) -> LexicalCandidates:
        name = self._exists(collection)
        if not terms or name is None:
            return LexicalCandidates([], [])
        generation = self._generation(collection)
        if fuzzy:
            terms = self.vocabulary(collection, generation).expand(terms)
        text = " ".join(dict.fromkeys(t for t in terms if t))
        expr = self._expr(collection, generation, flt)
        if not text or expr is None:
            return LexicalCandidates([], [])
        res = self.client.search(
            name,
            data=[text],
            anns_field="sparse",
            limit=min(n + 1, 16384),
            filter=expr,
            output_fields=["id"],
            search_params={"metric_type": "BM25"},
        )
        # Milvus returns BM25 scores (some versions negated, as distances): positive either way.
        hits = sorted(((int(h["id"]), abs(float(h["distance"]))) for h in res[0]), key=lambda x: -x[1])
        hits = [h for h in hits if h[1] > 0]
        complete = len(hits) <= n
        hits = hits[:n]
        return LexicalCandidates([h[0] for h in hits], [h[1] for h in hits], complete)

    # ---- reads ---------------------------------------------------------------------------------
    def fetch(self, collection: str, ids: Sequence[int]) -> dict[int, Hit]:
        name = self._exists(collection)
        if name is None or not ids:
            return {}
        rows = self._query(name, f"id in [{', '.join(str(int(i)) for i in ids)}]", _OUT)
        return {
            int(r["id"]): Hit(
                chunk_id=f"{r['doc_id']}#{r['ord']}",
                doc_id=r["doc_id"],
                collection=collection,
                text=r["text"],
                title=r["title"],
                heading=r["heading"],
                score=0.0,
                page=None if r["page"] < 0 else int(r["page"]),
                start=int(r["start"]),
                end=int(r["end"]),
                ord=int(r["ord"]),
                metadata=dict(r["metadata"] or {}),
                access_groups=tuple(r["groups"]),
            )
            for r in rows
        }

    def chunk_spans(self, collection: str, doc_id: str) -> list[tuple[int, int, int]]:
        name = self._exists(collection)
        if name is None:
            return []
        rows = self._query(name, f"doc_id == {literal(doc_id)}", ["ord", "start", "end"])
        return sorted((int(r["ord"]), int(r["start"]), int(r["end"])) for r in rows)

    def export_document(self, collection: str, doc_id: str) -> list[IndexRow]:
        name = self._exists(collection)
        if name is None:
            return []
        fields = [
            "ord",
            "text",
            "title",
            "heading",
            "page",
            "start",
            "end",
            "tokens",
            "vec",
            "tvec",
            "title_hash",
            "title_terms",
            "body_terms",
            "metadata",
            "groups",
        ]
        out = []
        for r in sorted(self._query(name, f"doc_id == {literal(doc_id)}", fields), key=lambda r: r["ord"]):
            chunk = Chunk(
                doc_id=doc_id,
                ord=int(r["ord"]),
                text=r["text"],
                title=r["title"],
                heading=r["heading"],
                page=None if r["page"] < 0 else int(r["page"]),
                start=int(r["start"]),
                end=int(r["end"]),
                tokens=int(r["tokens"]),
            )
            tvec = np.asarray(r["tvec"], dtype=np.float32)
            out.append(
                IndexRow(
                    chunk,
                    np.asarray(r["vec"], dtype=np.float32),
                    tvec if np.any(tvec) else None,
                    r["title_hash"],
                    r["title_terms"],
                    r["body_terms"],
                    dict(r["metadata"] or {}),
                    tuple(r["groups"]),
                )
            )
        return out

    def close(self) -> None:
        self.client.close()
        if self._owns_client and self.config.lite:
            # Milvus Lite's server outlives its clients; stop it with the last one so another
            # process can open the file.
            with _LITE_LOCK:
                _LITE_USERS[self.config.uri] -= 1
                last = _LITE_USERS[self.config.uri] <= 0
            if last:
                try:
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(self.config.uri)
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass


__all__ = ["NOTHING", "MilvusSearchIndex", "chunk_key"]
