"""The answer cache in Redis, shared by several app instances (``cache.backend = "redis"``).

Layout under ``prefix``: ``{prefix}:e:{key}`` holds the JSON entry with the TTL;
``{prefix}:v:{scope}`` is a hash of key → question vector (float32 bytes) for the semantic
match; ``{prefix}:c:{collection}`` is a set of the collection's keys (for ``clear``). Hash fields
cannot expire on their own, so a vector whose entry is gone is removed when a search meets it.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import numpy as np

from spravka.core.errors import ConfigError


class RedisCacheBackend:
    def __init__(self, url: str, *, prefix: str = "spravka:cache", client: Any = None) -> None:
        if client is None:
            try:
                import redis
            except ImportError:
                raise ConfigError("the Redis cache needs the redis package", hint="pip install 'spravka[redis]'") from None
            client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.r = client
        self.prefix = prefix

    def _e(self, key: str) -> str:
        return f"{self.prefix}:e:{key}"

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self.r.get(self._e(key))
        return json.loads(raw) if raw else None

    def put(self, key: str, scope: str, collection: str, question: str, entry: dict[str, Any],
            ttl_s: int, vector: np.ndarray | None = None) -> None:
        body = json.dumps({**entry, "_scope": scope, "_collection": collection}, ensure_ascii=False)
        p = self.r.pipeline(transaction=True)
        p.set(self._e(key), body, ex=ttl_s or None)
        p.sadd(f"{self.prefix}:c:{collection}", key)
        if vector is not None:
            p.hset(f"{self.prefix}:v:{scope}", key, np.asarray(vector, dtype=np.float32).tobytes())
        p.execute()

    def touch(self, key: str) -> None:
        self.r.incr(f"{self.prefix}:h:{key}")

    def delete(self, keys: list[str]) -> None:
        if not keys:
            return
        entries = self.r.mget([self._e(k) for k in keys])
        p = self.r.pipeline(transaction=True)
        for k, raw in zip(keys, entries, strict=True):
            p.delete(self._e(k), f"{self.prefix}:h:{k}")
            if raw:
                e = json.loads(raw)
                p.hdel(f"{self.prefix}:v:{e.get('_scope')}", k)
                p.srem(f"{self.prefix}:c:{e.get('_collection')}", k)
        p.execute()

    def similar(self, scope: str, vector: np.ndarray, threshold: float, limit: int) -> list[tuple[str, float]]:
        name = f"{self.prefix}:v:{scope}"
        items = self.r.hgetall(name)
        if not items:
            return []
        keys = [k.decode() if isinstance(k, bytes) else k for k in items]
        m = np.frombuffer(b"".join(items.values()), dtype=np.float32).reshape(len(keys), -1)
        if m.shape[1] != len(vector):
            return []
        sims = m @ np.asarray(vector, dtype=np.float32)
        order = [i for i in np.argsort(-sims)[: max(limit, 1) * 4] if sims[i] >= threshold]
        if not order:
            return []
        present = self.r.mget([self._e(keys[i]) for i in order])
        gone = [keys[i] for i, raw in zip(order, present, strict=True) if raw is None]
        if gone:
            self.r.hdel(name, *gone)
        return [(keys[i], float(sims[i])) for i, raw in zip(order, present, strict=True) if raw is not None][:limit]

    def clear(self, collection: str | None = None) -> int:
        if collection is not None:
            keys = [k.decode() for k in self.r.smembers(f"{self.prefix}:c:{collection}")]
            n = int(self.r.exists(*[self._e(k) for k in keys])) if keys else 0
            self.delete(keys)
            self.r.delete(f"{self.prefix}:c:{collection}")
            return n
        n = 0
        batch = []
        for k in self.r.scan_iter(match=f"{self.prefix}:*", count=500):
            if k.decode().startswith(f"{self.prefix}:e:"):
                n += 1
            batch.append(k)
            if len(batch) >= 500:
                self.r.delete(*batch)
                batch = []
        if batch:
            self.r.delete(*batch)
        return n

    def count(self) -> int:
        return sum(1 for _ in self.r.scan_iter(match=f"{self.prefix}:e:*", count=500))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # best effort
            self.r.close()
