"""API keys, roles and rate limits for every network interface (HTTP API, web console, bots)."""

from __future__ import annotations

from spravka.auth.keys import ApiKey, KeyStore, parse_groups
from spravka.auth.ratelimit import RateLimiter
from spravka.auth.roles import PERMISSIONS, Role, can
from spravka.core.errors import SpravkaError


class RateLimitedError(SpravkaError):
    """Too many requests for one key; ``retry_after`` seconds until the next one is accepted."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


__all__ = ["PERMISSIONS", "ApiKey", "KeyStore", "RateLimitedError", "RateLimiter", "Role", "can", "parse_groups"]
