"""The answer cache in the shared tables (``answer_cache``): the embedded SQLite database (schema v5)
or PostgreSQL (revision 0002), through the same queries."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np


class SqlCacheBackend:
    def __init__(self, db: Any, *, clock=time.time) -> None:
        self.db = db
        self.clock = clock

    def get(self, key: str) -> dict[str, Any] | None:
        rows = self.db.query("SELECT entry, expires_at FROM answer_cache WHERE key=?", (key,))
        if not rows:
            return None
        entry, expires = rows[0]
        if expires and expires <= self.clock():
            self.delete([key])
            return None
        return json.loads(entry)

    def put(self, key: str, scope: str, collection: str, question: str, entry: dict[str, Any],
            ttl_s: int, vector: np.ndarray | None = None) -> None:
        t = self.clock()
        blob = np.asarray(vector, dtype=np.float32).tobytes() if vector is not None else None
        self.db.execute(
            "INSERT INTO answer_cache(key, scope, collection, question, vector, entry, created_at, expires_at)"
            " VALUES(?,?,?,?,?,?,?,?) ON CONFLICT (key) DO UPDATE SET scope=excluded.scope,"
            " collection=excluded.collection, question=excluded.question, vector=excluded.vector,"
            " entry=excluded.entry, created_at=excluded.created_at, expires_at=excluded.expires_at, hits=0",
            (key, scope, collection, question, blob, json.dumps(entry, ensure_ascii=False), t,
             t + ttl_s if ttl_s else 0),
        )

    def touch(self, key: str) -> None:
        self.db.execute("UPDATE answer_cache SET hits=hits+1 WHERE key=?", (key,))

    def delete(self, keys: list[str]) -> None:
        if keys:
            self.db.execute(f"DELETE FROM answer_cache WHERE key IN ({','.join('?' * len(keys))})", keys)

    def similar(self, scope: str, vector: np.ndarray, threshold: float, limit: int) -> list[tuple[str, float]]:
        rows = self.db.query(
            "SELECT key, vector FROM answer_cache WHERE scope=? AND vector IS NOT NULL"
            " AND (expires_at=0 OR expires_at>?) ORDER BY created_at DESC LIMIT ?",
            (scope, self.clock(), limit),
        )
        if not rows:
            return []
        m = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        if m.shape[1] != len(vector):
            return []
        sims = m @ np.asarray(vector, dtype=np.float32)
        order = np.argsort(-sims)
        return [(rows[i][0], float(sims[i])) for i in order if sims[i] >= threshold]

    def clear(self, collection: str | None = None) -> int:
        if collection is None:
            cur = self.db.execute("DELETE FROM answer_cache")
        else:
            cur = self.db.execute("DELETE FROM answer_cache WHERE collection=?", (collection,))
        return int(cur.rowcount or 0)

    def purge_expired(self) -> int:
        cur = self.db.execute("DELETE FROM answer_cache WHERE expires_at>0 AND expires_at<=?", (self.clock(),))
        return int(cur.rowcount or 0)

    def count(self) -> int:
        return int(self.db.query("SELECT count(*) FROM answer_cache")[0][0])

    def close(self) -> None:  # the database belongs to the app
        pass
