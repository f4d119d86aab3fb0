"""Governed agents over HTTP: run one, approve or reject its waiting actions, read a run's trail.

A run answers when the model has finished, a limit is hit, or a write waits for a person
(``awaiting_approval`` with the approval's id). Runs use the caller's role (tools follow it) and
access groups (the knowledge-base tool reads only those). Approving needs the ``inbox``
permission, and by default someone other than the caller (``agents.four_eyes``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from spravka.api.security import requires, service
from spravka.api.service import Principal

router = APIRouter()


class RunRequest(BaseModel):
    task: str = Field(..., min_length=1, max_length=8000)


class RejectBody(BaseModel):
    reason: str = Field("", max_length=1000)


@router.get("/v1/agents", tags=["agents"], summary="Agents with their tools, roles and approval policy")
def agents(request: Request, p: Principal = Depends(requires("agents"))):
    return {"agents": [a.model_dump() for a in service(request).sp.agents.available()]}


@router.post("/v1/agents/{name}/runs", tags=["agents"], summary="Run an agent on a task")
async def run(name: str, req: RunRequest, request: Request, p: Principal = Depends(requires("agents"))):
    svc = service(request)
    res = await run_in_threadpool(lambda: svc.sp.agents.run(name[:64], req.task, actor=p.key.name, role=p.role,
                                                            flt=p.filter()))
    return res.to_dict()


@router.get("/v1/agents/runs/{run_id}", tags=["agents"], summary="A run's audit trail (steps, approvals, end)")
def trail(run_id: str, request: Request, p: Principal = Depends(requires("agents"))):
    rows = service(request).sp.agents.trail(run_id[:64])
    if p.role != "admin" and any(e.get("actor") not in (None, p.key.name) for e in rows):
        rows = []  # another caller's run: only administrators read every trail
    return {"run_id": run_id, "events": rows}


@router.post("/v1/agents/approvals/{item_id}/approve", tags=["agents"], summary="Approve a waiting action")
async def approve(item_id: str, request: Request, p: Principal = Depends(requires("inbox"))):
    svc = service(request)
    res = await run_in_threadpool(lambda: svc.sp.agents.approve(item_id[:64], p.key.name))
    return res.to_dict()


@router.post("/v1/agents/approvals/{item_id}/reject", tags=["agents"], summary="Reject a waiting action")
async def reject(item_id: str, req: RejectBody, request: Request, p: Principal = Depends(requires("inbox"))):
    svc = service(request)
    res = await run_in_threadpool(lambda: svc.sp.agents.reject(item_id[:64], p.key.name, req.reason))
    return res.to_dict()
