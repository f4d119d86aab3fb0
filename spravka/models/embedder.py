"""The ``Embedder`` port and the embedding cache that wraps any adapter.

Adapters only turn text into unit vectors. Batching, caching by content hash and query LRU live
here, once, so every adapter gets them.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    #: stable identifier of the model *and* its preprocessing; part of every cache key
    name: str
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


class VectorCache(Protocol):
    """Persistent storage of vectors by (model name, content hash). The store implements it."""

    def get_vectors(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_vectors(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> None: ...


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def approx_tokens(text: str) -> int:
    """Token estimate for subword tokenizers when the model has no counter (~3.6 chars a token)."""
    return max(1, round(len(text) / 3.6))


def normalize_rows(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    if m.ndim == 1:
        n = float(np.linalg.norm(m))
        return m / n if n > 0 else m
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return m / norms


class CachedEmbedder:
    """Batches passages, reuses vectors stored under their content hash, and keeps a query LRU.

    Re-ingesting an unchanged chunk never calls the model: its hash is already in the cache.
    """

    def __init__(
        self,
        embedder: Embedder,
        cache: VectorCache | None = None,
        *,
        batch_size: int = 32,
        query_cache_size: int = 2048,
    ) -> None:
        self.inner = embedder
        self.cache = cache
        self.batch_size = batch_size
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._qsize = query_cache_size
        self._lock = threading.Lock()
        self.model_calls = 0
        self.cache_hits = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed_passages(
        self,
        texts: Sequence[str],
        hashes: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Vectors for ``texts`` (rows in order), computing only those not cached."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        hashes = list(hashes) if hashes is not None else [text_hash(t) for t in texts]
        found = self.cache.get_vectors(self.name, list(set(hashes))) if self.cache else {}
        todo: dict[str, str] = {}
        for h, t in zip(hashes, texts, strict=True):
            if h not in found and h not in todo:
                todo[h] = t
        self.cache_hits += len(texts) - sum(1 for h in hashes if h in todo)
        items = list(todo.items())
        for i in range(0, len(items), self.batch_size):
            batch = items[i : i + self.batch_size]
            vecs = normalize_rows(self.inner.embed_passages([t for _, t in batch]))
            self.model_calls += len(batch)
            new = list(zip([h for h, _ in batch], vecs, strict=True))
            if self.cache:
                self.cache.put_vectors(self.name, new)
            found.update(new)
            if progress:
                progress(len(batch))
        return np.stack([found[h] for h in hashes]).astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            hit = self._queries.get(text)
            if hit is not None:
                self._queries.move_to_end(text)
                return hit
        vec = normalize_rows(self.inner.embed_queries([text])[0])
        if self._qsize <= 0:
            return vec
        with self._lock:
            self._queries[text] = vec
            if len(self._queries) > self._qsize:
                self._queries.popitem(last=False)
        return vec

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return normalize_rows(self.inner.embed_queries(list(texts)))
