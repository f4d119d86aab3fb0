"""Embedders for online users: any OpenAI-compatible ``/v1/embeddings`` server, or
sentence-transformers models from the Hugging Face hub.

Neither is used by the embedded defaults or the tests' default path; both are exercised against a
scripted stand-in (OpenAI protocol) or skipped when their extra is missing (sentence-transformers).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np

from spravka.core.errors import ModelError, ModelUnavailableError
from spravka.models.embedder import approx_tokens


class OpenAIEmbedder:
    """``POST {base_url}/embeddings`` as served by vLLM, TEI, Infinity, Ollama or llama.cpp.

    e5/bge-style models want instruction prefixes; set ``query_prefix`` / ``passage_prefix``.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        dim: int | None = None,
        timeout_s: float = 60.0,
        query_prefix: str = "",
        passage_prefix: str = "",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}@{self.base_url}"
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers, transport=transport)
        self.dim = dim or self._probe_dim()

    def _post(self, texts: list[str]) -> np.ndarray:
        try:
            r = self._client.post(f"{self.base_url}/embeddings", json={"model": self.model, "input": texts})
        except httpx.HTTPError as e:
            raise ModelUnavailableError(f"embedding server {self.base_url} is unreachable: {e}") from e
        if r.status_code >= 400:
            raise ModelError(f"embedding server answered {r.status_code}: {r.text[:200]}")
        data = sorted(r.json()["data"], key=lambda d: d["index"])
        return np.asarray([d["embedding"] for d in data], dtype=np.float32)

    def _probe_dim(self) -> int:
        return int(self._post(["probe"]).shape[1])

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._post([self.passage_prefix + t for t in texts])

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._post([self.query_prefix + t for t in texts])

    def count_tokens(self, text: str) -> int:
        return approx_tokens(text)


class SentenceTransformersEmbedder:  # pragma: no cover - needs torch, optional extra
    """Any sentence-transformers model (downloads from the hub when online)."""

    def __init__(self, model: str, *, query_prefix: str = "", passage_prefix: str = "") -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ModelError(
                "sentence-transformers is not installed",
                hint="pip install sentence-transformers torch==2.13.0 (CPU wheel)",
            ) from e
        self._model = SentenceTransformer(model)
        self.dim = int(self._model.get_sentence_embedding_dimension())
        self.name = f"st:{model}"
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._model.encode([self.passage_prefix + t for t in texts]), dtype=np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._model.encode([self.query_prefix + t for t in texts]), dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer.tokenize(text))
