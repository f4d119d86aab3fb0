"""Lookup, validation and storage of cached answers over a :class:`~spravka.cache.base.CacheBackend`.

Why invalidation is checked **on read** rather than hooked into the ingestion commit:

* the document store is the one source of truth, shared by every process that may change it
  (``spravka ingest`` from cron while ``spravka serve`` runs, an upload job, another app
  instance on PostgreSQL, a folder ``--prune``, a deleted collection); an ingestion-side hook
  would have to reach every cache of every process (a Redis one too) and would miss changes
  made by a process that crashed between its commit and the hook, or that has no cache
  configured;
* the check is cheap: an entry records, for each chunk it used (its citations and the hits the
  answer was built from), the content hash of the chunk's document (which covers the text, the
  metadata, the access groups and the chunking settings, so it changes exactly when the chunk
  could). A hit costs one primary-key read per distinct document (<= ``answer.k``), well under a
  millisecond on SQLite;
* deletions are the same case: a document that is gone has no record, so its entries are stale.

A stale entry is deleted when it is met and reported as a miss (``stale`` in the stats). Access
groups are part of the scope, so an entry never answers another group; the document hashes also
cover the documents' own groups, so re-grouping a document invalidates its answers.

A broken backend (Redis down) never breaks answering: lookups and stores then count as errors and
the pipeline goes on without the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spravka.cache.base import CacheBackend
from spravka.core.filters import Filter
from spravka.core.text.normalize import cache_key_text
from spravka.core.types import Answer, AnswerStatus, Citation, Hit

log = logging.getLogger(__name__)

#: bump when the entry layout changes: older entries simply stop matching
FORMAT = 1


@dataclass
class CacheHit:
    key: str
    entry: dict[str, Any]
    #: exact | semantic
    match: str
    similarity: float = 1.0


@dataclass
class CacheStats:
    hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    stale: int = 0
    stored: int = 0
    errors: int = 0
    saved_llm_calls: int = 0
    saved_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **kw: int) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str).encode()).hexdigest()[:32]


def scope_of(collection: str, flt: Filter | None, mode: str, fingerprint: str) -> str:
    """Everything besides the question that decides an answer. ``groups`` None (no access filter,
    the CLI) and () (public only) are different scopes."""
    conditions = sorted([c.field, c.op, c.value] for c in flt.conditions) if flt is not None else []
    groups = sorted(flt.groups) if flt is not None and flt.groups is not None else None
    return _sha({"f": FORMAT, "c": collection, "g": groups, "w": conditions, "m": mode, "cfg": fingerprint})


class AnswerCache:
    def __init__(
        self,
        backend: CacheBackend,
        store: Any,
        *,
        fingerprint: str = "",
        ttl_s: int = 86400,
        semantic_threshold: float | None = None,
        semantic_candidates: int = 5000,
        embed: Callable[[str], np.ndarray] | None = None,
    ) -> None:
        self.backend = backend
        self.store = store
        self.fingerprint = fingerprint
        self.ttl_s = ttl_s
        self.semantic_threshold = semantic_threshold
        self.semantic_candidates = semantic_candidates
        self.embed = embed
        self.stats = CacheStats()

    @property
    def semantic(self) -> bool:
        return self.semantic_threshold is not None and self.embed is not None

    def key(self, scope: str, question: str) -> str | None:
        text = cache_key_text(question)
        return _sha([scope, text]) if text else None

    # ---- read ---------------------------------------------------------------------------------
    def lookup(self, question: str, collection: str, flt: Filter | None, mode: str, *,
               threshold: float = 0.0) -> CacheHit | None:
        """A valid cached answer for ``question``, or None (a miss). ``threshold`` is the
        collection's current confidence gate: an entry below it (after a recalibration) is stale."""
        scope = scope_of(collection, flt, mode, self.fingerprint)
        key = self.key(scope, question)
        if key is None:
            return None
        try:
            entry = self.backend.get(key)
            if entry is not None:
                if self.valid(entry, collection, threshold):
                    self.backend.touch(key)
                    return self._hit(CacheHit(key, entry, "exact"))
                self.backend.delete([key])
                self.stats.add(stale=1)
            if self.semantic:
                assert self.embed is not None and self.semantic_threshold is not None
                vec = self.embed(question)
                for other, sim in self.backend.similar(scope, vec, self.semantic_threshold, 3):
                    e = self.backend.get(other)
                    if e is None:
                        continue
                    if self.valid(e, collection, threshold):
                        self.backend.touch(other)
                        return self._hit(CacheHit(other, e, "semantic", round(sim, 4)))
                    self.backend.delete([other])
                    self.stats.add(stale=1)
        except Exception as e:  # noqa: BLE001 - the cache is an optimisation, never a failure
            self.stats.add(errors=1)
            log.warning("answer cache lookup failed: %s: %s", type(e).__name__, e)
            return None
        self.stats.add(misses=1)
        return None

    def _hit(self, hit: CacheHit) -> CacheHit:
        e = hit.entry
        self.stats.add(hits=1, semantic_hits=int(hit.match == "semantic"), saved_llm_calls=int(e.get("llm_calls", 0)),
                       saved_tokens=int((e.get("tokens") or {}).get("total", 0)))
        return hit

    def valid(self, entry: dict[str, Any], collection: str, threshold: float = 0.0) -> bool:
        if entry.get("format") != FORMAT or entry.get("collection") != collection:
            return False
        if float(entry.get("confidence", 0.0)) < threshold:
            return False
        for doc_id, content_hash in (entry.get("documents") or {}).items():
            rec = self.store.get_document(collection, doc_id)
            if rec is None or rec.content_hash != content_hash:
                return False
        return True

    # ---- write --------------------------------------------------------------------------------
    def save(self, question: str, answer: Answer, flt: Filter | None, mode: str) -> bool:
        """Cache an answered (never a refused) answer built in ``mode`` (not a fallback)."""
        if answer.status != AnswerStatus.ANSWERED or answer.mode != mode or not answer.citations:
            return False
        scope = scope_of(answer.collection, flt, mode, self.fingerprint)
        key = self.key(scope, question)
        if key is None:
            return False
        try:
            docs = self._documents(answer)
            if docs is None:
                return False
            entry = {
                "format": FORMAT, "collection": answer.collection, "question": answer.question,
                "text": answer.text, "confidence": answer.confidence, "mode": answer.mode,
                "language": answer.language,
                "citations": [dataclasses.asdict(c) for c in answer.citations],
                "hits": [_hit_dict(h) for h in answer.hits],
                # chunk id → content hash of its document (the chunk's text derives from it)
                "chunks": {cid: docs[cid.split("#", 1)[0]] for cid in _chunk_ids(answer)
                           if cid.split("#", 1)[0] in docs},
                "documents": docs,
                "tokens": dict(answer.tokens or {}), "cost": answer.cost,
                "llm_calls": int((answer.tokens or {}).get("calls", 0)),
                "answer_id": answer.id, "created": time.time(),
            }
            vec = self.embed(question) if self.semantic and self.embed is not None else None
            self.backend.put(key, scope, answer.collection, cache_key_text(question), entry, self.ttl_s, vec)
        except Exception as e:  # noqa: BLE001
            self.stats.add(errors=1)
            log.warning("answer cache store failed: %s: %s", type(e).__name__, e)
            return False
        self.stats.add(stored=1)
        return True

    def _documents(self, answer: Answer) -> dict[str, str] | None:
        docs: dict[str, str] = {}
        ids = [c.doc_id for c in answer.citations] + [h.doc_id for h in answer.hits]
        for doc_id in dict.fromkeys(ids):
            rec = self.store.get_document(answer.collection, doc_id)
            if rec is None:  # deleted while we answered: do not cache
                return None
            docs[doc_id] = rec.content_hash
        return docs

    def clear(self, collection: str | None = None) -> int:
        return self.backend.clear(collection)

    # ---- an Answer from an entry ------------------------------------------------------------------
    @staticmethod
    def answer_of(hit: CacheHit, question: str, answer_id: str) -> Answer:
        e = hit.entry
        return Answer(
            question=question, text=e["text"], status=AnswerStatus.ANSWERED, confidence=float(e["confidence"]),
            citations=[Citation(**c) for c in e.get("citations", [])], mode=e["mode"], collection=e["collection"],
            id=answer_id, language=e.get("language", "ru"),
            hits=[Hit(**{**h, "metadata": h.get("metadata") or {}, "access_groups": tuple(h.get("access_groups") or ())})
                  for h in e.get("hits", [])],
            cache={"result": "hit", "match": hit.match, "similarity": hit.similarity,
                   "source_answer": e.get("answer_id"), "saved_llm_calls": int(e.get("llm_calls", 0)),
                   "saved_tokens": int((e.get("tokens") or {}).get("total", 0)),
                   "saved_cost": float(e.get("cost", 0.0))},
        )


def _chunk_ids(answer: Answer) -> list[str]:
    return list(dict.fromkeys([c.chunk_id for c in answer.citations if c.chunk_id] +
                              [h.chunk_id for h in answer.hits]))


def _hit_dict(h: Hit) -> dict[str, Any]:
    return {"chunk_id": h.chunk_id, "doc_id": h.doc_id, "collection": h.collection, "text": h.text[:400],
            "title": h.title, "heading": h.heading, "score": round(float(h.score), 4), "rank": h.rank,
            "page": h.page, "start": h.start, "end": h.end, "ord": h.ord,
            "metadata": {"url": h.url} if h.url else {}, "access_groups": list(h.access_groups)}
