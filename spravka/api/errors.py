"""One error shape for every failure: ``{"error": {"code", "type", "message", "hint"}}`` (also
what OpenAI clients expect), with the HTTP status each :class:`SpravkaError` carries. Nothing a
client sends can make the process die: unexpected errors become a logged 500."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from spravka.auth import RateLimitedError
from spravka.core.errors import SpravkaError

log = logging.getLogger("spravka.api")


def error_body(code: str, message: str, hint: str | None = None, **extra: Any) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "type": code, "message": message}
    if hint:
        err["hint"] = hint
    err.update(extra)
    return {"error": err}


def _metrics(request: Request):
    svc = getattr(request.app.state, "service", None)
    return svc.metrics if svc is not None else None


def spravka_error_response(request: Request, e: SpravkaError) -> JSONResponse:
    status = int(getattr(e, "http_status", 500) or 500)
    headers = {}
    extra: dict[str, Any] = {}
    if isinstance(e, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(e.retry_after)))
    if getattr(e, "supported", None):
        extra["supported"] = e.supported  # type: ignore[attr-defined]
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if _unread_body(request):
        # Refused before its body was read (too large, wrong type, no key): close the connection,
        # or the server would go on draining a body of any size to keep the connection alive.
        headers["Connection"] = "close"
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, e)
    m = _metrics(request)
    if m is not None:
        m.errors.labels(e.code).inc()
        if status == 403:
            m.auth_failures.labels("403").inc()
    return JSONResponse(error_body(e.code, e.message, e.hint, **extra), status_code=status, headers=headers)


def _unread_body(request: Request) -> bool:
    h = request.headers
    if "chunked" in h.get("transfer-encoding", "").lower():
        return True
    try:
        return int(h.get("content-length") or 0) > 1024 * 1024
    except ValueError:
        return True


def _where(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def validation_response(request: Request, e: RequestValidationError) -> JSONResponse:
    errors = e.errors()
    for err in errors:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            msg = f"malformed JSON: {ctx.get('error', 'cannot parse the body')}"
            return JSONResponse(error_body("malformed_json", msg, "send a JSON object with Content-Type: application/json"),
                                status_code=422)
    parts = []
    for err in errors[:5]:
        parts.append(f"{_where(tuple(err.get('loc', ())))}: {err.get('msg', 'invalid')}")
    details = [{"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
               for err in errors[:20]]
    return JSONResponse(error_body("validation", "; ".join(parts) or "invalid request", details=details),
                        status_code=422)


def http_response(request: Request, e: StarletteHTTPException) -> JSONResponse:
    detail = e.detail if isinstance(e.detail, str) else "request failed"
    return JSONResponse(error_body(f"http_{e.status_code}", detail), status_code=e.status_code,
                        headers=getattr(e, "headers", None))


def internal_response(request: Request, e: Exception) -> JSONResponse:
    log.exception("%s %s: unexpected error", request.method, request.url.path)
    m = _metrics(request)
    if m is not None:
        m.errors.labels("internal").inc()
    return JSONResponse(error_body("internal", "internal error; the server log has the details"), status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(SpravkaError, spravka_error_response)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_response)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_response)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, internal_response)
