"""The composition root: the only place that reads settings and picks adapters.

Interfaces build one :class:`Spravka` and reach capabilities through it. Everything is created
lazily, so ``spravka docs`` does not load an embedding model and ``spravka search`` does not
load a loader.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from spravka.core.errors import ConfigError, InputError
from spravka.core.filters import Filter
from spravka.core.settings import Settings
from spravka.core.types import Answer, SearchResult
from spravka.models.embedder import CachedEmbedder, Embedder

if TYPE_CHECKING:
    from spravka.answer.pipeline import Answerer, StreamEvent
    from spravka.answer.rerank import Reranker
    from spravka.models.chat import ChatModel
    from spravka.models.local import LocalModelServer
    from spravka.privacy import PrivacyGuard

#: one lazily started local model server per process, however many threads ask at once
_LLM_LOCK = threading.Lock()
#: how long a remote LLM's reachability (auto mode) is trusted before asking again
_PING_TTL_S = 30.0


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
        """The database behind the document store: SQLite in the data directory (embedded, and
        beside a Milvus index) or PostgreSQL (``store.url = postgres://…``)."""
        url = self.settings.store.url
        scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else url
        if scheme in ("postgres", "postgresql"):
            from spravka.store.postgres.db import PgDatabase

            return PgDatabase(url)
        if scheme in ("milvus", "milvus-lite"):
            from spravka.store.milvus.config import SideDatabase

            return SideDatabase(self.home / "spravka.db")
        if url != "sqlite":
            raise ConfigError(
                f"unknown store '{url}'",
                hint="use 'sqlite' (embedded), postgres://user:password@host/db or milvus://host:19530",
            )
        from spravka.store.sqlite.db import Database

        return Database(self.home / "spravka.db")

    @cached_property
    def store(self):
        if type(self.db).__name__ == "PgDatabase":
            from spravka.store.postgres.documents import PgDocumentStore

            return PgDocumentStore(self.db)
        from spravka.store.sqlite.documents import SqliteDocumentStore

        return SqliteDocumentStore(self.db)

    @cached_property
    def index(self):
        url = self.settings.store.url
        if type(self.db).__name__ == "PgDatabase":
            from spravka.store.postgres.index import PgSearchIndex

            return PgSearchIndex(self.db, self.store, self.embedder.dim)
        if type(self.db).__name__ == "SideDatabase":
            from spravka.store.milvus.config import parse_url
            from spravka.store.milvus.index import MilvusSearchIndex

            index = MilvusSearchIndex(parse_url(url, self.home), self.store, self.embedder.dim)
            self.db.attach(index)
            return index
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

    # ---- shared queues ---------------------------------------------------------------------------
    @cached_property
    def inbox(self):
        """Human tasks of every kind (escalations, triage, reviews, approvals)."""
        from spravka.store.sqlite.queues import SqliteInbox

        inbox = SqliteInbox(self._queue_db)
        # A triage decision taken anywhere (console, API) teaches the classifier at once.
        inbox.on_resolve("triage", lambda item: self.classifier.sync_triage(force=True))
        return inbox

    @cached_property
    def outbox(self):
        """Deliveries to outside systems, persisted before they are sent."""
        from spravka.store.sqlite.queues import SqliteOutbox

        return SqliteOutbox(self._queue_db)

    @cached_property
    def dispatcher(self):
        """Sends the outbox; capabilities register their target schemes on it."""
        from spravka.delivery import OutboxDispatcher
        from spravka.delivery.webhook import WebhookSender

        d = OutboxDispatcher(self.outbox)
        d.register("webhook", WebhookSender())
        return d

    @cached_property
    def keys(self):
        """API keys (salted hashes), their roles and access groups (HTTP API, console, bots)."""
        from spravka.auth.keys import KeyStore

        return KeyStore(self._queue_db)

    @cached_property
    def classifier(self):
        """Ticket classification and routing over the taxonomy in ``settings.classify``."""
        from spravka.classify import TicketClassifier

        return TicketClassifier(
            db=self._queue_db, embedder=self.embedder, settings=self.settings.classify, home=self.home,
            inbox=self.inbox, outbox=self.outbox,
            log_event=lambda kind, payload: self.store.log_event(kind, payload),
            llm=lambda: self.llm, llm_available=self.llm_available,
        )

    @cached_property
    def _queue_db(self):
        """The SQLite database of the shared queues, API keys and classifier data: the document
        store's own in the embedded profile (and beside a Milvus index); with PostgreSQL, a side
        SQLite in the data directory (not yet shared between several app instances)."""
        if type(self.db).__name__ == "PgDatabase":
            from spravka.store.sqlite.db import Database

            return Database(self.home / "spravka.db")
        return self.db

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

    # ---- language model and answers ---------------------------------------------------------
    @cached_property
    def guard(self) -> PrivacyGuard:
        """Masks personal data before a request leaves the perimeter (external providers only)."""
        from spravka.privacy import PrivacyGuard

        return PrivacyGuard()

    @property
    def models_dir(self) -> Path:
        return Path(self.settings.llm.models_dir or self.home / "models").expanduser()

    @cached_property
    def local_server(self) -> LocalModelServer:
        """The llama.cpp server for ``llm.local_model`` (not started until :attr:`llm` needs it)."""
        from spravka.models.local import LocalModelServer

        llm = self.settings.llm
        return LocalModelServer(llm.local_model, models_dir=self.models_dir, n_ctx=llm.n_ctx, threads=llm.threads)

    @cached_property
    def llm(self) -> ChatModel:
        """The chat model from ``settings.llm``. For ``llamacpp`` without a base_url the local
        server starts here, on first use; an external provider gets the privacy guard as hooks."""
        from spravka.models.providers import build_chat_model, chat_config

        llm = self.settings.llm
        with _LLM_LOCK:
            if "llm" in self.__dict__:  # another thread built it while we waited
                return self.__dict__["llm"]
            base_url = None
            if llm.provider == "llamacpp" and not llm.base_url:
                base_url = self.local_server.start().base_url
            if chat_config(llm, base_url=base_url).external:
                guard = self.guard
                return build_chat_model(llm, base_url=base_url, before_send=guard.protect, after_receive=guard.restore)
            return build_chat_model(llm, base_url=base_url)

    def llm_available(self) -> bool:
        """Can a generative answer be had now (``answer.mode = auto``)? Local model: llama.cpp is
        installed and the GGUF is present (and a started server is still alive). Remote: the
        server answered ``/models`` within the connect timeout (remembered for 30 s)."""
        llm = self.settings.llm
        if llm.provider == "llamacpp" and not llm.base_url:
            if "local_server" in self.__dict__ and "llm" in self.__dict__:
                return self.local_server.alive()
            import importlib.util

            from spravka.core.errors import NotFoundError
            from spravka.models.local import resolve

            if importlib.util.find_spec("xllamacpp") is None:
                return False
            try:
                resolve(llm.local_model, self.models_dir)
            except NotFoundError:
                return False
            return True
        checked = self.__dict__.get("_llm_ping")
        if checked and time.monotonic() - checked[0] < _PING_TTL_S:
            return checked[1]
        try:
            ok = self.llm.ping()
        except ConfigError:
            ok = False
        self.__dict__["_llm_ping"] = (time.monotonic(), ok)
        return ok

    @cached_property
    def reranker(self) -> Reranker | None:
        from spravka.answer.rerank import CrossEncoderReranker, HttpReranker, LLMReranker

        a = self.settings.answer
        if a.rerank == "none":
            return None
        if a.rerank == "llm":
            return LLMReranker(self._llm_if_available)
        if a.rerank == "http":
            if not a.rerank_url:
                raise ConfigError("answer.rerank = 'http' needs answer.rerank_url", hint="e.g. http://127.0.0.1:8081/rerank")
            return HttpReranker(a.rerank_url, model=a.rerank_model, timeout_s=self.settings.llm.timeout_s)
        if not a.rerank_model:
            raise ConfigError("answer.rerank = 'cross-encoder' needs answer.rerank_model")
        return CrossEncoderReranker(a.rerank_model)

    def _llm_if_available(self) -> ChatModel:
        from spravka.core.errors import ModelUnavailableError

        if not self.llm_available():
            raise ModelUnavailableError("no language model is available for reranking",
                                        hint="spravka models fetch, or set [llm]")
        return self.llm

    @cached_property
    def answerer(self) -> Answerer:
        from spravka.answer.pipeline import Answerer

        return Answerer(self.searcher, self.index, self.store, self.settings.answer, embedder=self.embedder,
                        llm=lambda: self.llm, llm_available=self.llm_available, reranker=self.reranker)

    def answer(self, question: str, *, collection: str | None = None, flt: Filter | None = None,
               mode: str | None = None, escalate: bool | None = None) -> Answer:
        """An answer with citations, or an honest refusal; logged as an ``answer`` event."""
        collection = collection or self.settings.collection
        self.check_collection(collection)
        return self.answerer.answer(question, collection=collection, flt=flt, mode=mode, escalate=escalate)

    def answer_stream(self, question: str, *, collection: str | None = None, flt: Filter | None = None,
                      mode: str | None = None, escalate: bool | None = None) -> Iterator[StreamEvent]:
        """Text deltas, maybe a reset with replacement text, then the final :class:`Answer` (SSE)."""
        collection = collection or self.settings.collection
        self.check_collection(collection)
        return self.answerer.answer_stream(question, collection=collection, flt=flt, mode=mode, escalate=escalate)

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
        if "llm" in self.__dict__:
            self.llm.close()
        if "local_server" in self.__dict__:
            self.local_server.stop()
        side = self.__dict__.get("_queue_db")
        if side is not None and side is not self.__dict__.get("db"):
            side.close()
        if "db" in self.__dict__:
            self.db.close()


def _filter_repr(flt: Filter | None) -> dict | None:
    if flt is None or flt.empty:
        return None
    return {"conditions": [[c.field, c.op, c.value] for c in flt.conditions],
            "groups": list(flt.groups) if flt.groups is not None else None}
