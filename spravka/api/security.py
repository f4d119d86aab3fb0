"""FastAPI dependencies: the caller's key (``Authorization: Bearer`` or ``X-API-Key``), its role
and rate limit. There is no unauthenticated access to ``/v1``; ``spravka serve --demo`` only
creates a demo key (role user, group public) and gives it to the demo page."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from spravka.api.service import Principal, Service

_bearer = HTTPBearer(auto_error=False, description="An API key: Authorization: Bearer spk_…")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same key in X-API-Key")


def service(request: Request) -> Service:
    return request.app.state.service


def principal(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    header: str | None = Depends(_header),
) -> Principal:
    raw = bearer.credentials if bearer is not None else header
    p = service(request).authenticate(raw)
    request.state.principal = p
    return p


def requires(permission: str) -> Callable[..., Principal]:
    def dependency(p: Principal = Depends(principal)) -> Principal:
        return p.require(permission)

    dependency.__name__ = f"requires_{permission.replace('.', '_')}"
    return dependency
