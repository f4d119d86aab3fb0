"""Jinja2 templates with autoescaping (every title, question and comment is untrusted text)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from fastapi.responses import HTMLResponse

from spravka.web import CSP, TEMPLATES

SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                    "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


@lru_cache(maxsize=1)
def env():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    e = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                    trim_blocks=True, lstrip_blocks=True)
    # JSON shown as text (tool arguments, payloads): readable Cyrillic, escaped like any text. Jinja's
    # own tojson writes «брак» as \u0431\u0440\u0430\u043a (it is meant for <script>, not for people).
    e.filters["json"] = lambda v: json.dumps(v, ensure_ascii=False, default=str)
    return e


def page(name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    html = env().get_template(name).render(**ctx)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
