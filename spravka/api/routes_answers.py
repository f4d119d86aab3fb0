"""Questions: ``/v1/ask`` (JSON or SSE), ``/v1/chat/completions`` and ``/v1/models``
(OpenAI-compatible, the model names a collection), ``/v1/search``, feedback and escalations."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from spravka.api.schemas import (
    AskRequest,
    AskResponse,
    ChatRequest,
    EscalationRequest,
    FeedbackRequest,
    SearchRequest,
    SearchResponse,
    clean_text,
)
from spravka.api.security import requires, service
from spravka.api.service import Principal, Service
from spravka.api.sse import SSE_DOC, SSE_HEADERS, first_event, sse, stream_errors
from spravka.api.uploads import PayloadTooLarge
from spravka.core.errors import AuthError, InputError, NotFoundError
from spravka.core.types import Answer
from spravka.escalate.hooks import parse as parse_hook
from spravka.escalate.hooks import verify as verify_hook

log = logging.getLogger("spravka.api")
router = APIRouter()

# ---- /v1/ask ------------------------------------------------------------------------------------

@router.post("/v1/ask", response_model=AskResponse, responses=SSE_DOC, tags=["answers"],
             summary="Answer a question with citations (JSON, or SSE with stream=true)")
def ask(req: AskRequest, request: Request, p: Principal = Depends(requires("ask"))):
    svc = service(request)
    sp = svc.sp
    collection = req.collection or sp.settings.collection
    flt = p.filter(req.filters)
    caller = p.caller("api")
    if not req.stream:
        a = sp.answer(req.question, collection=collection, flt=flt, mode=req.mode, escalate=req.escalate,
                      caller=caller)
        svc.remember(a, p, "ask")
        return AskResponse.of(a)
    events = first_event(sp.answer_stream(req.question, collection=collection, flt=flt, mode=req.mode,
                                     escalate=req.escalate, caller=caller))
    return StreamingResponse(stream_errors(_ask_events(svc, p, events), lambda body: sse("error", body)),
                             media_type="text/event-stream", headers=SSE_HEADERS)


def _ask_events(svc: Service, p: Principal, events: Iterator[Any]) -> Iterator[str]:
    from spravka.answer.pipeline import StreamReset

    for ev in events:
        if isinstance(ev, Answer):
            svc.remember(ev, p, "ask")
            yield sse("answer", AskResponse.of(ev).model_dump())
        elif isinstance(ev, StreamReset):
            yield sse("reset", {"reason": ev.reason})
        elif ev:
            yield sse("delta", {"text": ev})


# ---- /v1/search ---------------------------------------------------------------------------------

@router.post("/v1/search", response_model=SearchResponse, tags=["search"],
             summary="Hybrid search over the documents of the key's access groups")
def search(req: SearchRequest, request: Request, p: Principal = Depends(requires("search"))):
    svc = service(request)
    sp = svc.sp
    result = sp.search(req.query, collection=req.collection or sp.settings.collection, flt=p.filter(req.filters),
                       k=req.k, mode=req.mode)
    svc.metrics.observe_search(result)
    return SearchResponse.of(result)


# ---- OpenAI-compatible -----------------------------------------------------------------------------

def _epoch(iso: str) -> int:
    try:
        return int(dt.datetime.fromisoformat(iso).timestamp())
    except (TypeError, ValueError):
        return 0


@router.get("/v1/models", tags=["openai"], summary="Collections, as OpenAI models")
def models(request: Request, p: Principal = Depends(requires("models"))):
    rows = service(request).sp.store.list_collections()
    return {"object": "list", "data": [
        {"id": r["name"], "object": "model", "created": _epoch(r["created_at"]), "owned_by": "spravka",
         "documents": r["documents"]} for r in rows]}


_SOURCES = {"ru": "Источники", "en": "Sources"}
_CORRECTED = {"ru": "Исправленный ответ", "en": "Corrected answer"}


def sources_text(a: Answer, cites: list[dict[str, Any]]) -> str:
    if not cites:
        return ""
    lines = []
    for c in cites:
        where = c["title"] or c["doc_id"]
        if c.get("url"):
            where += f" — {c['url']}"
        elif c["title"] and c["title"] != c["doc_id"]:
            where += f" ({c['doc_id']})"
        lines.append(f"[{c['n']}] {where}")
    return f"\n\n{_SOURCES.get(a.language, _SOURCES['en'])}:\n" + "\n".join(lines)


def _question(req: ChatRequest) -> str:
    for m in reversed(req.messages):
        if m.role == "user":
            q = clean_text(m.text()).strip()
            if not q:
                raise InputError("the last user message is empty")
            if len(q) > 4000:
                raise InputError("the question is longer than 4000 characters")
            return q
    raise InputError("no user message", hint="messages must contain a {\"role\": \"user\"} message")


def _usage(a: Answer) -> dict[str, int]:
    t = a.tokens or {}
    return {"prompt_tokens": t.get("prompt", 0), "completion_tokens": t.get("completion", 0),
            "total_tokens": t.get("total", 0)}


def _extra(a: Answer, cites: list[dict[str, Any]]) -> dict[str, Any]:
    return {"sources": cites, "spravka": {"answer_id": a.id, "status": str(a.status), "confidence": a.confidence,
                                          "mode": a.mode, "answer": a.text}}


@router.post("/v1/chat/completions", tags=["openai"], responses=SSE_DOC,
             summary="OpenAI-compatible chat completion; the model names the collection")
def chat_completions(req: ChatRequest, request: Request, p: Principal = Depends(requires("ask"))):
    svc = service(request)
    sp = svc.sp
    collection = req.model
    if not sp.store.has_collection(collection):
        raise NotFoundError(f"the model '{collection[:128]}' does not exist", hint="GET /v1/models lists the collections")
    question = _question(req)
    flt = p.filter()
    created = int(time.time())
    if not req.stream:
        a = sp.answer(question, collection=collection, flt=flt, caller=p.caller("chat"))
        svc.remember(a, p, "chat")
        cites = [c.model_dump() for c in AskResponse.of(a).citations]
        return JSONResponse({
            "id": f"chatcmpl-{a.id}", "object": "chat.completion", "created": created, "model": collection,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": a.text + sources_text(a, cites)},
                         "finish_reason": "stop"}],
            "usage": _usage(a), **_extra(a, cites)})
    events = first_event(sp.answer_stream(question, collection=collection, flt=flt, caller=p.caller("chat")))
    return StreamingResponse(stream_errors(_chat_events(svc, p, events, collection, created),
                                            lambda body: f"data: {json.dumps(body, ensure_ascii=False)}\n\n"),
                             media_type="text/event-stream", headers=SSE_HEADERS)


def _chat_events(svc: Service, p: Principal, events: Iterator[Any], model: str, created: int) -> Iterator[str]:
    """Deltas as they come. OpenAI clients cannot retract text: when the citation check replaces a
    generated answer, the replacement follows under a «corrected answer» line, and the final
    chunk carries the authoritative text in ``spravka.answer``."""
    from spravka.answer.pipeline import StreamReset

    cid = f"chatcmpl-{int(time.time() * 1000)}"

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False, separators=(',', ':'))}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    reset = False
    for ev in events:
        if isinstance(ev, Answer):
            svc.remember(ev, p, "chat")
            cites = [c.model_dump() for c in AskResponse.of(ev).citations]
            tail = sources_text(ev, cites)
            if tail:
                yield chunk({"content": tail})
            yield chunk({}, "stop", usage=_usage(ev), **_extra(ev, cites))
        elif isinstance(ev, StreamReset):
            reset = True
        elif ev:
            if reset:
                lang = "ru" if any("а" <= ch.lower() <= "я" for ch in ev[:200]) else "en"
                ev = f"\n\n{_CORRECTED[lang]}:\n{ev}"
                reset = False
            yield chunk({"content": ev})
    yield "data: [DONE]\n\n"


# ---- feedback and escalations --------------------------------------------------------------------

@router.post("/v1/feedback", status_code=201, tags=["answers"], summary="👍/👎 and a comment on an answer")
def feedback(req: FeedbackRequest, request: Request, p: Principal = Depends(requires("feedback"))):
    svc = service(request)
    known = svc.recall(req.answer_id)
    if known is None or (known.get("key") not in (None, p.key.id) and p.role != "admin"):
        raise NotFoundError(f"answer '{req.answer_id}' not found")
    svc.sp.store.log_event("feedback", {"answer_id": req.answer_id, "rating": req.rating,
                                        "comment": req.comment, "key": p.key.id},
                           collection=known.get("collection"))
    svc.metrics.feedback.labels(req.rating).inc()
    return {"ok": True, "answer_id": req.answer_id, "rating": req.rating}


@router.post("/v1/escalations", status_code=201, tags=["answers"],
             summary="Call an operator: an escalation (inbox item of type 'escalation'), once per answer")
def escalate(req: EscalationRequest, request: Request, p: Principal = Depends(requires("escalate"))):
    svc = service(request)
    known = svc.recall(req.answer_id) if req.answer_id else None
    if req.answer_id and known is not None and known.get("key") not in (None, p.key.id) and p.role != "admin":
        known = None  # another key's answer: escalate the question, but show none of that answer
    collection = req.collection or (known or {}).get("collection") or svc.sp.settings.collection
    item = svc.sp.escalations.create(
        req.question, collection=collection, answer_id=req.answer_id, contact=req.contact, comment=req.comment,
        language=req.language, channel="widget", chunks=(known or {}).get("hits"),
        conversation=[{"role": "user", "text": req.question}] + (
            [{"role": "assistant", "text": (known or {})["text"]}] if (known or {}).get("text") else []),
        caller=p.caller("widget"), reason="user_request", answer_text=(known or {}).get("text"),
        answer_status=(known or {}).get("status"))
    svc.metrics.escalations.inc()
    return {"id": item.id, "state": str(item.state), "type": item.type}


@router.get("/v1/escalations/{escalation_id}", tags=["answers"],
            summary="Poll an escalation (by its id or the answer id): its state and the operator's answer")
def escalation_status(escalation_id: str, request: Request, p: Principal = Depends(requires("escalate"))):
    svc = service(request)
    item = svc.sp.escalations.get(escalation_id[:64])
    owner = ((item.payload.get("caller") or {}).get("key"))
    if p.role != "admin" and owner != p.key.id:
        raise NotFoundError(f"escalation '{escalation_id[:64]}' not found")
    return svc.sp.escalations.public(item)


_HOOK_MAX_BYTES = 1 << 20


@router.post("/v1/escalations/hooks/{system}", tags=["answers"],
             summary="A helpdesk agent's public comment (Jira / Zendesk webhook) answers the escalation")
async def helpdesk_hook(system: str, request: Request):
    """Authenticated by ``escalate.hook_secret`` (bearer, or ``X-Hub-Signature: sha256=`` HMAC of the
    body), not by an API key: see :mod:`spravka.escalate.hooks` for the payloads."""
    svc = service(request)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > _HOOK_MAX_BYTES:
        raise PayloadTooLarge("the webhook body is over 1 MB")
    parts, size = [], 0
    async for part in request.stream():  # a chunked body without a length is capped as it arrives
        size += len(part)
        if size > _HOOK_MAX_BYTES:
            raise PayloadTooLarge("the webhook body is over 1 MB")
        parts.append(part)
    body = b"".join(parts)
    secret = svc.sp.settings.escalate.hook_secret
    if not verify_hook(secret.get_secret_value() if secret else None, body, {k.lower(): v for k, v in request.headers.items()}):
        raise AuthError("the helpdesk webhook did not present escalate.hook_secret",
                        hint="Authorization: Bearer <secret> or X-Hub-Signature: sha256=<HMAC-SHA256 of the body>")
    try:
        data = json.loads(body)
    except ValueError:
        raise InputError("the webhook body is not JSON") from None
    comment = parse_hook(system[:16], data)
    if comment is None:
        return {"status": "ignored", "reason": "not a new comment"}
    result = await asyncio.to_thread(svc.sp.escalations.helpdesk_reply, comment)
    svc.sp.store.log_event("escalation.hook", {"system": comment.system, "ticket": comment.ticket[:64],
                                               "status": result["status"]})
    return result
