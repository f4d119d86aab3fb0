"""The cache backend port: a small key-value store of JSON entries with a TTL, plus a nearest
question vector search within a scope (for the semantic match)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class CacheBackend(Protocol):
    def get(self, key: str) -> dict[str, Any] | None:
        """The entry, or None when absent or expired."""

    def put(self, key: str, scope: str, collection: str, question: str, entry: dict[str, Any],
            ttl_s: int, vector: np.ndarray | None = None) -> None:
        """Store (replace) an entry; ``ttl_s`` 0 keeps it until deleted."""

    def touch(self, key: str) -> None:
        """Count a hit on the entry (for the console; may be a no-op)."""

    def delete(self, keys: list[str]) -> None: ...

    def similar(self, scope: str, vector: np.ndarray, threshold: float, limit: int) -> list[tuple[str, float]]:
        """Keys of the scope whose question vector has cosine >= ``threshold``, best first."""

    def clear(self, collection: str | None = None) -> int:
        """Drop every entry (of one collection); returns how many went."""

    def count(self) -> int: ...

    def close(self) -> None: ...
