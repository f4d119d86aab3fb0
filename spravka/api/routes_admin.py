"""Administration over HTTP: API keys, the inbox (escalations and other human tasks), the event log."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request

from spravka.api.schemas import InboxDismiss, InboxResolve, KeyCreate
from spravka.api.security import requires, service
from spravka.api.service import Principal
from spravka.core.errors import InputError, NotFoundError
from spravka.core.types import to_jsonable
from spravka.store.queues import InboxState

router = APIRouter()


@router.get("/v1/keys", tags=["keys"], summary="API keys (never their secrets)")
def list_keys(request: Request, revoked: bool = False, p: Principal = Depends(requires("keys"))):
    return {"keys": [k.public() for k in service(request).keys.list(include_revoked=revoked)]}


@router.post("/v1/keys", status_code=201, tags=["keys"], summary="Create a key; the full key is in this response only")
def create_key(req: KeyCreate, request: Request, p: Principal = Depends(requires("keys"))):
    svc = service(request)
    key, rec = svc.keys.create(req.name, req.role, req.groups, rate_per_minute=req.rate_per_minute)
    svc.sp.store.log_event("key.create", {"id": rec.id, "name": rec.name, "role": str(rec.role),
                                          "groups": list(rec.groups), "by": p.key.id})
    return {"key": key, **rec.public()}


@router.delete("/v1/keys/{key_id}", tags=["keys"], summary="Revoke a key (at once)")
def revoke_key(key_id: str, request: Request, p: Principal = Depends(requires("keys"))):
    svc = service(request)
    k = svc.keys.get(key_id[:64])
    if k is None:
        raise NotFoundError(f"no API key '{key_id[:64]}'")
    if k.active and str(k.role) == "admin" and svc.keys.count_admins() <= 1:
        raise InputError("this is the last admin key", hint="create another admin key first")
    k = svc.keys.revoke(k.id)
    svc.limiter.reset(k.id)
    svc.sp.store.log_event("key.revoke", {"id": k.id, "name": k.name, "by": p.key.id})
    return k.public()


@router.get("/v1/inbox", tags=["inbox"], summary="Human tasks: escalations and others")
def list_inbox(request: Request, type: str | None = Query(None, max_length=64),
               state: Literal["open", "claimed", "done", "dismissed"] | None = None,
               limit: int = Query(100, ge=1, le=1000), p: Principal = Depends(requires("inbox"))):
    items = service(request).sp.inbox.list(type=type, state=InboxState(state) if state else None, limit=limit)
    return {"items": to_jsonable(items)}


def _item(request: Request, item_id: str):
    item = service(request).sp.inbox.get(item_id[:64])
    if item is None:
        raise NotFoundError(f"inbox item '{item_id[:64]}' not found")
    return item


@router.get("/v1/inbox/{item_id}", tags=["inbox"])
def get_inbox_item(item_id: str, request: Request, p: Principal = Depends(requires("inbox"))):
    return to_jsonable(_item(request, item_id))


@router.post("/v1/inbox/{item_id}/claim", tags=["inbox"])
def claim(item_id: str, request: Request, p: Principal = Depends(requires("inbox"))):
    item = _item(request, item_id)
    return to_jsonable(service(request).sp.inbox.claim(item.id, p.key.name))


@router.post("/v1/inbox/{item_id}/resolve", tags=["inbox"])
def resolve(item_id: str, req: InboxResolve, request: Request, p: Principal = Depends(requires("inbox"))):
    item = _item(request, item_id)
    return to_jsonable(service(request).sp.inbox.resolve(item.id, req.resolution, p.key.name))


@router.post("/v1/inbox/{item_id}/dismiss", tags=["inbox"])
def dismiss(item_id: str, req: InboxDismiss, request: Request, p: Principal = Depends(requires("inbox"))):
    item = _item(request, item_id)
    return to_jsonable(service(request).sp.inbox.dismiss(item.id, req.reason, p.key.name))


@router.get("/v1/events", tags=["events"], summary="The event log, newest first")
def events(request: Request, kind: str | None = Query(None, max_length=64), limit: int = Query(100, ge=1, le=1000),
           p: Principal = Depends(requires("events"))):
    return {"events": list(service(request).sp.store.events(kind=kind, limit=limit))}
