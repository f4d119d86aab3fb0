"""The composition root: the only place that reads settings and picks adapters.

Interfaces build one :class:`Spravka` and reach capabilities through it. Everything is created
lazily, so ``spravka docs`` does not load an embedding model and ``spravka search`` does not
load a loader.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)

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

            return PgSearchIndex(self.db, self.store, self.embedder.dim, cache_dir=self.home / "index")
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
        ocr = None
        if i.ocr:
            from spravka.models.ocr import Tesseract

            ocr = Tesseract(i.ocr_languages)
        return Ingestor(self.store, self.index, self.embedder, self.chunker,
                        max_file_mb=i.max_file_mb, batch_chunks=i.batch_chunks, ocr=ocr, ocr_max_pages=i.ocr_max_pages)

    @cached_property
    def searcher(self):
        from spravka.search.hybrid import HybridSearcher

        return HybridSearcher(self.index, self.embedder, self.settings.search)

    # ---- shared queues ---------------------------------------------------------------------------
    @cached_property
    def inbox(self):
        """Human tasks of every kind (escalations, triage, reviews, approvals)."""
        from spravka.store.sql_queues import SqlInbox

        inbox = SqlInbox(self._queue_db)
        # A triage decision taken anywhere (console, API) teaches the classifier at once.
        inbox.on_resolve("triage", lambda item: self.classifier.sync_triage(force=True))
        # An operator's answer goes back to the user through the channel the question came from.
        inbox.on_resolve("escalation", lambda item: self.escalations.on_resolved(item))
        return inbox

    @cached_property
    def escalations(self):
        """Questions handed over to people: the operator queue plus Jira/Zendesk/webhook targets."""
        from spravka.escalate import Escalations

        return Escalations(self.inbox, self.outbox, self._queue_db, self.settings.escalate,
                           log_event=lambda kind, payload, collection=None: self.store.log_event(
                               kind, payload, collection=collection))

    @cached_property
    def extractor(self):
        """Structured extraction: documents (text layer or OCR) to schema-valid JSON, a review queue."""
        from spravka.extract.service import TYPE, Extractor

        ex = Extractor(lambda: self.llm, self.inbox, self.outbox, self.settings.extract,
                       log_event=lambda kind, payload: self.store.log_event(kind, payload),
                       max_file_mb=self.settings.ingest.max_file_mb)
        self.inbox.on_resolve(TYPE, ex.on_resolved)
        return ex

    @cached_property
    def generator(self):
        """Text generation from templates in the company's tone of voice, checked, with a review queue."""
        from spravka.answer.sources import build_sources
        from spravka.generate.service import TYPE, Generator

        def retrieve(query: str, collection: str, flt, k: int):
            hits = self.searcher.search(query, collection=collection, k=k, flt=flt).hits
            return build_sources(hits, collection, self.index, self.store, max_sources=k,
                                 window_chars=self.settings.answer.window_chars)

        gen = Generator(lambda: self.llm, retrieve, self.inbox, self.outbox, self.settings.generate,
                        log_event=lambda kind, payload: self.store.log_event(kind, payload),
                        default_collection=self.settings.collection)
        self.inbox.on_resolve(TYPE, gen.on_resolved)
        return gen

    @cached_property
    def agents(self):
        """Governed agents: tools over connectors (CRM, ERP, Jira) and the KB, approvals in the inbox."""
        from spravka.agents import Agents

        def search(query: str, k: int, flt):
            hits = self.searcher.search(query, collection=self.settings.collection, k=k, flt=flt).hits
            return [{"doc_id": h.doc_id, "title": h.title, "text": h.text} for h in hits]

        return Agents(self.settings.agents.dir or self.home / "agents", lambda: self.llm, search, self.inbox,
                      log_event=lambda kind, payload: self.store.log_event(kind, payload),
                      events=self.store.events, settings=self.settings.agents)

    @cached_property
    def outbox(self):
        """Deliveries to outside systems, persisted before they are sent."""
        from spravka.store.sql_queues import SqlOutbox

        return SqlOutbox(self._queue_db)

    @cached_property
    def dispatcher(self):
        """Sends the outbox; capabilities register their target schemes on it. It takes only the
        schemes registered here (a bot process and ``spravka serve`` share one outbox) and
        leases each message while sending it."""
        from spravka.delivery import OutboxDispatcher
        from spravka.delivery.webhook import WebhookSender

        dl, esc = self.settings.delivery, self.settings.escalate
        d = OutboxDispatcher(self.outbox, max_attempts=dl.max_attempts, base_delay_s=dl.base_delay_s,
                             max_delay_s=dl.max_delay_s, only_registered=True, lease_s=dl.lease_s)
        secret = esc.webhook_secret.get_secret_value() if esc.webhook_secret else None
        d.register("webhook", WebhookSender(secret=secret, timeout_s=dl.timeout_s))
        if "jira" in esc.targets:
            from spravka.escalate import JiraSender

            j = esc.jira
            d.register("jira", JiraSender(j.base_url, service_desk_id=j.service_desk_id,
                                          request_type_id=j.request_type_id, email=j.email,
                                          api_token=j.api_token.get_secret_value() if j.api_token else None,
                                          timeout_s=dl.timeout_s))
        if "zendesk" in esc.targets:
            from spravka.escalate import ZendeskSender

            z = esc.zendesk
            d.register("zendesk", ZendeskSender(z.base_url, email=z.email, group_id=z.group_id,
                                                api_token=z.api_token.get_secret_value() if z.api_token else None,
                                                timeout_s=dl.timeout_s))
        tg = self.settings.telegram
        if tg.token is not None:
            from spravka.delivery.telegram import TelegramSender

            d.register("telegram", TelegramSender(tg.token.get_secret_value(), api_url=tg.api_url,
                                                  timeout_s=dl.timeout_s))
        return d

    def start_dispatcher(self) -> bool:
        """Run the outbox dispatcher in a background thread (``spravka serve``, the bots)."""
        if not self.settings.delivery.enabled:
            return False
        self.dispatcher.start(interval_s=self.settings.delivery.interval_s)
        return True

    # ---- answer cache and query log ------------------------------------------------------------
    @cached_property
    def cache(self):
        """The answer cache (``settings.cache``), or None when it is off."""
        c = self.settings.cache
        if not c.enabled:
            return None
        from spravka.cache import AnswerCache
        from spravka.core.text.normalize import normalize_query

        if c.backend == "redis":
            from spravka.cache.redis import RedisCacheBackend

            if not c.url:
                raise ConfigError("cache.backend = 'redis' needs cache.url", hint="e.g. redis://127.0.0.1:6379/0")
            backend = RedisCacheBackend(c.url, prefix=c.prefix)
        else:
            from spravka.cache.sql import SqlCacheBackend

            backend = SqlCacheBackend(self._queue_db)
        return AnswerCache(backend, self.store, fingerprint=self._answer_fingerprint(), ttl_s=c.ttl_s,
                           semantic_threshold=c.semantic_threshold, semantic_candidates=c.semantic_candidates,
                           embed=lambda q: self.embedder.embed_query(normalize_query(q)))

    def _answer_fingerprint(self) -> str:
        """Everything in the configuration that shapes an answer: a change makes new cache keys."""
        import hashlib
        import json

        st = self.settings
        parts = {"answer": st.answer.model_dump(mode="json", exclude={"escalate", "fallback"}),
                 "search": st.search.model_dump(mode="json"), "embedder": self.embedder.name,
                 "llm": [st.llm.provider, st.llm.base_url, st.llm.model, st.llm.local_model]}
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def purge_events(self, days: int | None = None) -> int:
        """Delete query-log events older than ``days`` (default ``analytics.retention_days``; 0 keeps all)."""
        from spravka.analytics.querylog import purge

        days = self.settings.analytics.retention_days if days is None else days
        return purge(self.store, days) if days > 0 else 0

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
        """The database of the shared tables (queues, API keys, classifier data, answer cache,
        Telegram bindings): the document store's own, SQLite in the embedded profile (and beside a
        Milvus index), PostgreSQL with the postgres store, so every server of a deployment shares
        them. A side ``spravka.db`` that an older version kept beside PostgreSQL is moved in once."""
        if type(self.db).__name__ == "PgDatabase":
            from spravka.store.postgres.shared import PgSharedDb, import_side_sqlite

            shared = PgSharedDb(self.db)
            side = self.home / "spravka.db"
            if side.is_file():
                copied = import_side_sqlite(side, shared)
                if copied is not None:
                    log.warning("copied the shared tables of %s into PostgreSQL (%s); it is not read again",
                                side, ", ".join(f"{t}: {n}" for t, n in copied.items() if n) or "no rows")
            return shared
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
        # Pay for the vector snapshot and the BM25 index here, not in the first user's search.
        t = time.perf_counter()
        try:
            self.index.prepare(collection)
        except Exception as e:  # noqa: BLE001 - the documents are in; the next search retries the index
            log.warning("ingested, but the search index of '%s' could not be prepared: %s", collection, e)
        report.index_seconds = round(time.perf_counter() - t, 2)
        report.seconds = round(report.seconds + report.index_seconds, 2)
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

        p = self.settings.privacy
        return PrivacyGuard(p.policy, p.kinds or None, min_confidence=p.min_confidence, require_ner=p.require_ner)

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
                        llm=lambda: self.llm, llm_available=self.llm_available, reranker=self.reranker,
                        cache=self.cache)

    def answer(self, question: str, *, collection: str | None = None, flt: Filter | None = None,
               mode: str | None = None, escalate: bool | None = None, caller: dict | None = None,
               use_cache: bool = True) -> Answer:
        """An answer with citations, or an honest refusal; logged as an ``answer`` event.

        ``caller`` (channel, role, key id; with ``reply_to``, ``contact`` and ``conversation`` for
        escalations) goes into the query log without secrets. An answer with status ``escalate``
        opens an escalation (``escalate.on_escalate_answer``)."""
        collection = collection or self.settings.collection
        self.check_collection(collection)
        a = self.answerer.answer(question, collection=collection, flt=flt, mode=mode, escalate=escalate,
                                 caller=_loggable(caller), use_cache=use_cache)
        self._maybe_escalate(a, caller)
        return a

    def answer_stream(self, question: str, *, collection: str | None = None, flt: Filter | None = None,
                      mode: str | None = None, escalate: bool | None = None, caller: dict | None = None,
                      use_cache: bool = True) -> Iterator[StreamEvent]:
        """Text deltas, maybe a reset with replacement text, then the final :class:`Answer` (SSE)."""
        collection = collection or self.settings.collection
        self.check_collection(collection)
        events = self.answerer.answer_stream(question, collection=collection, flt=flt, mode=mode, escalate=escalate,
                                             caller=_loggable(caller), use_cache=use_cache)

        def watched() -> Iterator[StreamEvent]:
            for ev in events:
                if isinstance(ev, Answer):
                    self._maybe_escalate(ev, caller)
                yield ev

        return watched()

    def _maybe_escalate(self, a: Answer, caller: dict | None) -> None:
        from spravka.core.types import AnswerStatus

        if a.status != AnswerStatus.ESCALATE or not self.settings.escalate.on_escalate_answer:
            return
        c = caller or {}
        self.escalations.create(a.question, collection=a.collection, answer=a, channel=c.get("channel", "cli"),
                                reply_to=c.get("reply_to"), contact=c.get("contact"),
                                conversation=c.get("conversation"), reason="low_confidence", caller=_loggable(c))

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
        if "dispatcher" in self.__dict__:
            self.dispatcher.stop()
        cache = self.__dict__.get("cache")
        if cache is not None:
            cache.backend.close()
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


#: what of a caller context the query log keeps (never a key, a contact or the conversation)
_LOGGED_CALLER = ("channel", "role", "key", "key_name")


def _loggable(caller: dict | None) -> dict | None:
    if not caller:
        return None
    return {k: v for k, v in caller.items() if k in _LOGGED_CALLER and v is not None} or None
