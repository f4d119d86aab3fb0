"""The demo page at ``/``: the widget live (with ``serve --demo``) and the snippet to paste."""

from __future__ import annotations

from fastapi import APIRouter, Request

from spravka.web.render import page

router = APIRouter(include_in_schema=False)


@router.get("/")
def index(request: Request):
    svc = request.app.state.service
    base = str(request.base_url).rstrip("/")
    collection = svc.sp.settings.collection
    key = svc.demo_key
    snippet = (f'<script src="{base}/static/widget.js" defer\n'
               f'        data-api="{base}"\n'
               f'        data-key="{key or "spk_…ключ роли user…"}"\n'
               f'        data-collection="{collection}"\n'
               f'        data-lang="ru"></script>')
    return page("index.html", base=base, key=key, collection=collection, snippet=snippet)
