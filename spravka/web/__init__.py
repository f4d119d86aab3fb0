"""The web side: the embeddable chat widget (one static JS file), the demo page at ``/`` and the
admin console at ``/admin`` (server-rendered, no build step, no CDN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

WEB = Path(__file__).resolve().parent
STATIC = WEB / "static"
TEMPLATES = WEB / "templates"

#: pages are ours alone: scripts and styles from this origin only, no framing
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def install(app: Any, svc: Any) -> None:
    from fastapi.staticfiles import StaticFiles

    from spravka.web import admin, pages

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.include_router(pages.router)
    app.include_router(admin.router)
    admin.install_handlers(app)
