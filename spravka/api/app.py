"""The FastAPI application: ``create_app(spravka)`` wires routes, errors, metrics, CORS and the web
pages around one composition root. ``spravka serve`` runs it with uvicorn."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from spravka.api import errors
from spravka.api.service import Service
from spravka.auth.roles import describe

log = logging.getLogger("spravka.api")

DESCRIPTION = """
Spravka answers questions over your documents with citations, inside your perimeter.

**Auth**: every `/v1` call needs an API key (`Authorization: Bearer spk_…` or `X-API-Key`),
created with `spravka keys create`. Roles: {roles}. Retrieval reads only the documents of the
key's access groups (plus `public`), inside the index query. Keys are rate-limited (429 with
`Retry-After`).
"""


class MetricsMiddleware:
    """Counts and times every request by route template (bounded label values), streams included."""

    def __init__(self, app: Any, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m = self.service.metrics
        status = {"code": 500}
        t0 = time.perf_counter()

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        m.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            m.in_flight.dec()
            route = scope.get("route")
            path = getattr(route, "path", None) or ("/static" if scope.get("path", "").startswith("/static/")
                                                    else "unmatched")
            m.requests.labels(scope.get("method", ""), path, str(status["code"])).inc()
            m.latency.labels(scope.get("method", ""), path).observe(time.perf_counter() - t0)


def create_app(sp: Any, *, demo_key: str | None = None, close_on_shutdown: bool = False,
               resume_jobs: bool = True, dispatch: bool | None = None) -> FastAPI:
    """The HTTP app over one :class:`~spravka.app.Spravka`. ``demo_key`` (``serve --demo``) is
    given to the demo page's widget; it is an ordinary key of role user in group public.
    ``dispatch`` (default ``delivery.enabled``) runs the outbox dispatcher while the app runs;
    starting also purges the query log past ``analytics.retention_days``."""
    svc = Service(sp, demo_key=demo_key)
    dispatch = sp.settings.delivery.enabled if dispatch is None else dispatch

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            purged = sp.purge_events()
            if purged:
                log.info("purged %d query-log events past the retention", purged)
        except Exception:  # noqa: BLE001 - retention must not stop the server
            log.exception("cannot purge old query-log events")
        if dispatch:
            sp.start_dispatcher()
        svc.warm_up()
        if resume_jobs:
            try:
                n = svc.jobs.resume(svc.pending_jobs())
                if n:
                    log.info("resumed %d unfinished job(s)", n)
            except Exception:  # noqa: BLE001 - a broken job row must not stop the server
                log.exception("cannot resume unfinished jobs")
            svc.start_recovery()
        yield
        if dispatch and "dispatcher" in sp.__dict__:
            sp.dispatcher.stop()
        svc.stop_recovery()
        svc.close()
        if close_on_shutdown:
            sp.close()

    roles = "; ".join(f"`{r}` ({', '.join(p)})" for r, p in describe().items())
    # Swagger UI from a CDN would not load inside a closed perimeter: the assets come from the
    # fastapi-offline wheel (the server extra), served by this process.
    app = FastAPI(title="Spravka API", version="1", description=DESCRIPTION.format(roles=roles), lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.service = svc
    errors.install(app)

    from spravka.api import (
        routes_admin,
        routes_agents,
        routes_answers,
        routes_documents,
        routes_extract,
        routes_generate,
    )

    app.include_router(routes_answers.router)
    app.include_router(routes_documents.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_extract.router)
    app.include_router(routes_generate.router)
    app.include_router(routes_agents.router)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Ready to answer: database reachable, models warm",
             responses={503: {"description": "Still warming up, or the database is unreachable"}})
    def readyz() -> JSONResponse:
        svc.warm_up()
        try:
            n = len(sp.store.list_collections())
        except Exception as e:  # noqa: BLE001
            return JSONResponse({"status": "unavailable", "error": f"database: {type(e).__name__}"}, status_code=503)
        if not svc.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        body: dict[str, Any] = {"status": "ready", "collections": n}
        if svc.warm_error:
            body["warning"] = svc.warm_error
        return JSONResponse(body)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics",
             responses={200: {"content": {"text/plain": {}}}})
    def metrics(request: Request) -> Response:
        if svc.settings.metrics_auth:
            raw = request.headers.get("authorization", "").removeprefix("Bearer ").strip() or \
                request.headers.get("x-api-key")
            svc.authenticate(raw).require("metrics")
        return Response(svc.metrics.render(), media_type=svc.metrics.content_type)

    _install_docs(app)

    from spravka.web import install as install_web

    install_web(app, svc)

    app.add_middleware(
        CORSMiddleware, allow_origins=list(svc.settings.cors_origins), allow_credentials=False,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-API-Key", "Accept"],
        expose_headers=["Retry-After", "Location"], max_age=600,
    )
    app.add_middleware(MetricsMiddleware, service=svc)
    return app


def _install_docs(app: FastAPI) -> None:
    from fastapi.responses import HTMLResponse

    try:
        import fastapi_offline
        from fastapi.openapi.docs import get_swagger_ui_html
        from fastapi.staticfiles import StaticFiles

        assets = Path(fastapi_offline.__file__).resolve().parent / "static"
        if not (assets / "swagger-ui-bundle.js").is_file():
            raise ImportError("no swagger-ui assets")
    except ImportError:
        @app.get("/docs", include_in_schema=False)
        def docs_fallback() -> HTMLResponse:
            return HTMLResponse('<!doctype html><meta charset="utf-8"><title>Spravka API</title>'
                                '<link rel="icon" href="data:,"><p>The OpenAPI schema: '
                                '<a href="/openapi.json">/openapi.json</a> (install the server extra for Swagger UI).')
        return

    app.mount("/docs-assets", StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Spravka API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon.png")
