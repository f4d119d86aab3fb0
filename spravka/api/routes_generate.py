"""Text generation over HTTP: a template and its inputs in, a checked text out; reviews approved.

The text is written while the request waits (seconds to tens of seconds with a small local
model), or, with ``stream: true``, shown as it is written (server-sent events: ``start``,
``delta``, ``retry``, ``result``, or ``error``). A template that searches the knowledge base
searches with the caller's access groups.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from spravka.api.security import requires, service
from spravka.api.service import Principal
from spravka.api.sse import SSE_DOC, SSE_HEADERS, first_event, sse, stream_errors
from spravka.core.errors import InputError

router = APIRouter()


class GenerateRequest(BaseModel):
    template: str = Field(..., max_length=64)
    inputs: dict[str, Any] = Field(default_factory=dict)
    tone: str | None = Field(None, max_length=64)
    collection: str | None = Field(None, max_length=128)
    #: drafts to write (each checked; the text is the one with the fewest issues, all are returned)
    variants: int = Field(1, ge=1, le=5)
    stream: bool = Field(False, description="Server-sent events: start, delta, retry, result, error.")


class ApproveBody(BaseModel):
    #: the edited text; omitted: the draft is accepted as it is
    text: str | None = Field(None, max_length=50_000)


def _builtin(kind: str, name: str, names: list[str]) -> str:
    if name not in names:  # a path would read files of the server: built-in names only
        raise InputError(f"unknown {kind} '{name[:64]}'", hint=f"one of: {', '.join(names)}")
    return name


@router.get("/v1/generate/templates", tags=["generate"], summary="Built-in templates (with inputs) and tones")
def templates(p: Principal = Depends(requires("generate"))):
    from spravka.generate import describe_builtin

    return describe_builtin()


@router.post("/v1/generate", tags=["generate"], responses=SSE_DOC,
             summary="Write a text from a template, checked (JSON, or SSE with stream=true)")
async def generate(req: GenerateRequest, request: Request, p: Principal = Depends(requires("generate"))):
    from spravka.generate import template_names, tone_names

    svc = service(request)
    tpl = _builtin("template", req.template, template_names())
    tone = _builtin("tone", req.tone, tone_names()) if req.tone else None
    kw: dict[str, Any] = {"tone": tone, "collection": req.collection, "flt": p.filter(), "variants": req.variants}
    if not req.stream:
        res = await run_in_threadpool(lambda: svc.sp.generator.generate(tpl, req.inputs, **kw))
        return res.to_dict()
    # the first event in the thread pool: bad inputs and a missing model get a real HTTP status
    events = await run_in_threadpool(lambda: first_event(svc.sp.generator.generate_stream(tpl, req.inputs, **kw)))
    frames = (sse(kind, data.to_dict() if kind == "result" else data) for kind, data in events)
    return StreamingResponse(stream_errors(frames, lambda body: sse("error", body)),
                             media_type="text/event-stream", headers=SSE_HEADERS)


@router.post("/v1/generate/reviews/{item_id}/approve", tags=["generate"],
             summary="Accept a draft after review (edited, or as it is); it is then delivered")
def approve(item_id: str, req: ApproveBody, request: Request, p: Principal = Depends(requires("inbox"))):
    from spravka.core.types import to_jsonable

    item = service(request).sp.generator.approve(item_id[:64], req.text, p.key.name)
    return to_jsonable(item)
