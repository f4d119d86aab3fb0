"""Per-key token buckets: a steady rate with a burst, refused requests learn when to retry.

In memory, per process: ``spravka serve`` is one process (threads), so the buckets are exact.
Behind several replicas each replica limits on its own (a limit of N per replica).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate_per_minute: float, burst: int, *, clock=time.monotonic, max_keys: int = 100_000) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str, *, rate_per_minute: float | None = None, burst: int | None = None) -> float:
        """Spend one token. Returns 0.0 when allowed, else the seconds until a token is back."""
        rate = (rate_per_minute / 60.0) if rate_per_minute else self.rate
        cap = float(burst or self.burst)
        now = self.clock()
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                if len(self._buckets) >= self.max_keys:
                    self._buckets.clear()  # bounded memory; a reset only ever lets requests through
                b = self._buckets[key] = _Bucket(cap, now)
            b.tokens = min(cap, b.tokens + (now - b.updated) * rate)
            b.updated = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            return (1.0 - b.tokens) / rate if rate > 0 else math.inf

    def reset(self, key: str) -> None:
        with self._lock:
            self._buckets.pop(key, None)
