"""The composition root: the only place that reads settings and picks adapters.

Interfaces build one :class:`Spravka` and reach capabilities through it. Everything is created
lazily, so ``spravka docs`` does not load an embedding model and ``spravka search`` does not
load a loader.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from spravka.core.errors import ConfigError, InputError
from spravka.core.filters import Filter
from spravka.core.settings import Settings
from spravka.core.types import SearchResult
from spravka.models.embedder import CachedEmbedder, Embedder


def build_embedder(settings: Settings) -> Embedder:
    e = settings.embedder
    if e.provider == "e5":
        from spravka.models.bundled import E5Embedder

        return E5Embedder(threads=e.threads)
    if e.provider == "use":
        from spravka.models.bundled import UseEmbedder

        return UseEmbedder(threads=e.threads)
    if e.provider == "openai":
        from spravka.models.remote import OpenAIEmbedder

        if not e.base_url or not e.model:
            raise ConfigError("embedder 'openai' needs embedder.base_url and embedder.model")
        return OpenAIEmbedder(e.base_url, e.model, api_key=e.api_key, timeout_s=e.timeout_s)
    if e.provider == "sentence-transformers":
        from spravka.models.remote import SentenceTransformersEmbedder

        if not e.model:
            raise ConfigError("embedder 'sentence-transformers' needs embedder.model")
        return SentenceTransformersEmbedder(e.model)
    raise ConfigError(f"unknown embedder provider '{e.provider}'")


class Spravka:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = Path(settings.home).expanduser()

    # ---- storage -----------------------------------------------------------------------------
    @cached_property
    def db(self):
        if self.settings.store.url != "sqlite":
            raise ConfigError(
                f"store '{self.settings.store.url}' is not available in this build",
                hint="the embedded store is 'sqlite'",
            )
        from spravka.store.sqlite.db import Database

        return Database(self.home / "spravka.db")

    @cached_property
    def store(self):
        from spravka.store.sqlite.documents import SqliteDocumentStore

        return SqliteDocumentStore(self.db)

    @cached_property
    def index(self):
        from spravka.store.sqlite.index import SqliteSearchIndex

        return SqliteSearchIndex(self.db, self.store, self.home / "index", self.embedder.dim)

    # ---- models ------------------------------------------------------------------------------
    @cached_property
    def embedder(self) -> CachedEmbedder:
        e = self.settings.embedder
        return CachedEmbedder(build_embedder(self.settings), self.store, batch_size=e.batch_size,
                              query_cache_size=e.query_cache)

    # ---- capabilities ------------------------------------------------------------------------
    @cached_property
    def chunker(self):
        from spravka.ingest.chunker import Chunker

        c = self.settings.chunking
        return Chunker(self.embedder.count_tokens, c.max_tokens, c.overlap_sentences)

    @cached_property
    def ingestor(self):
        from spravka.ingest.pipeline import Ingestor

        i = self.settings.ingest
        return Ingestor(self.store, self.index, self.embedder, self.chunker,
                        max_file_mb=i.max_file_mb, batch_chunks=i.batch_chunks)

    @cached_property
    def searcher(self):
        from spravka.search.hybrid import HybridSearcher

        return HybridSearcher(self.index, self.embedder, self.settings.search)

    def ingest(self, path: Path, collection: str | None = None, **kw):
        collection = collection or self.settings.collection
        built_with = self.store.collection_settings(collection).get("embedder")
        if built_with and built_with != self.embedder.name:
            # Vectors of two models cannot share an index: rebuild this collection's index.
            self.index.drop(collection)
            kw["force"] = True
        report = self.ingestor.ingest_path(path, collection, **kw)
        self.store.update_collection_settings(collection, {"embedder": self.embedder.name})
        return report

    def search(self, query: str, *, collection: str | None = None, flt: Filter | None = None, **kw) -> SearchResult:
        collection = collection or self.settings.collection
        self.check_collection(collection)
        result = self.searcher.search(query, collection=collection, flt=flt, **kw)
        self.store.log_event("search", {
            "query": result.query, "k": len(result.hits), "filters": _filter_repr(flt),
            "hits": [[h.chunk_id, round(h.score, 4)] for h in result.hits], "timings_ms": result.timings_ms,
        }, collection=collection)
        return result

    def check_collection(self, collection: str) -> None:
        """Fail clearly instead of searching a collection built with another embedding model."""
        if not self.store.has_collection(collection):
            raise InputError(f"collection '{collection}' does not exist", hint="run 'spravka ingest PATH' first")
        built_with = self.store.collection_settings(collection).get("embedder")
        if built_with and built_with != self.embedder.name:
            raise ConfigError(
                f"collection '{collection}' was indexed with '{built_with}', the configured embedder is "
                f"'{self.embedder.name}'",
                hint="use the same embedder, or re-ingest with --force",
            )

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()


def _filter_repr(flt: Filter | None) -> dict | None:
    if flt is None or flt.empty:
        return None
    return {"conditions": [[c.field, c.op, c.value] for c in flt.conditions],
            "groups": list(flt.groups) if flt.groups is not None else None}
