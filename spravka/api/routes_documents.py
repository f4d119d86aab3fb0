"""Documents: streamed uploads, listing with ingestion status, re-ingestion, deletion, jobs."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from spravka.api.schemas import DocumentIds
from spravka.api.security import requires, service
from spravka.api.service import Principal, Service, check_collection_name
from spravka.api.uploads import receive_upload
from spravka.auth.keys import parse_groups
from spravka.core.errors import InputError, NotFoundError
from spravka.core.types import DocStatus, DocumentRecord, to_jsonable
from spravka.ingest.loaders.base import supported_extensions

router = APIRouter(tags=["documents"])

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "array", "items": {"type": "string", "format": "binary"},
                         "description": "One or more files (repeat the field)."},
                "collection": {"type": "string", "description": "Collection; default from settings."},
                "groups": {"type": "string", "description": "Access groups, comma-separated; default the key's."},
            },
        }}},
    }
}


def _collection(svc: Service, name: str | None) -> str:
    return check_collection_name(name or svc.sp.settings.collection)


def _doc_out(r: DocumentRecord) -> dict:
    d = to_jsonable(r)
    d["status"] = str(r.status)
    return d


def _visible(svc: Service, p: Principal, collection: str, doc_id: str) -> DocumentRecord:
    rec = svc.sp.store.get_document(collection, doc_id) if svc.sp.store.has_collection(collection) else None
    if rec is None or (p.role != "admin" and not p.reads(rec.access_groups)):
        raise NotFoundError(f"document '{doc_id[:200]}' not found in '{collection}'")
    return rec


@router.post("/v1/documents", status_code=202, openapi_extra=_UPLOAD_BODY,
             summary="Upload files (multipart, size-capped, streamed to disk); ingestion runs as a job")
async def upload(request: Request, collection: str | None = Query(None, max_length=64),
                 groups: str | None = Query(None, max_length=2000),
                 p: Principal = Depends(requires("documents.write"))):
    svc = service(request)
    staged = await receive_upload(request, svc.staging_dir(), max_bytes=svc.max_upload_bytes,
                                  supported=supported_extensions())
    try:
        coll = _collection(svc, staged.fields.get("collection") or collection)
        grp = p.upload_groups(parse_groups(staged.fields.get("groups") or groups))
        if not staged.files:
            raise InputError("no file in the upload", hint="send the file in the multipart field 'file'")
    except BaseException:
        staged.discard()
        raise
    out = await run_in_threadpool(svc.place_upload, staged, coll, grp, p)
    return JSONResponse(out, status_code=202, headers={"Location": f"/v1/jobs/{out['job_id']}"})


@router.get("/v1/documents", summary="Documents with their ingestion status and errors")
def list_documents(request: Request, collection: str | None = Query(None, max_length=64),
                   status: Literal["pending", "ok", "duplicate", "failed"] | None = None,
                   limit: int = Query(500, ge=1, le=10000), offset: int = Query(0, ge=0),
                   p: Principal = Depends(requires("documents.read"))):
    svc = service(request)
    coll = _collection(svc, collection)
    if not svc.sp.store.has_collection(coll):
        raise NotFoundError(f"collection '{coll}' does not exist")
    records = svc.sp.store.list_documents(coll, DocStatus(status) if status else None)
    if p.role != "admin":
        records = [r for r in records if p.reads(r.access_groups)]
    return {"collection": coll, "total": len(records), "documents": [_doc_out(r) for r in records[offset:offset + limit]]}


@router.post("/v1/documents/reingest", status_code=202, summary="Re-read documents from their files (a job)")
def reingest(req: DocumentIds, request: Request, p: Principal = Depends(requires("documents.write"))):
    svc = service(request)
    coll = _collection(svc, req.collection)
    for doc_id in req.ids:
        _visible(svc, p, coll, doc_id)
    job = svc.jobs.submit("api.reingest", {"collection": coll, "doc_ids": req.ids, "key": p.key.id}, total=len(req.ids))
    return JSONResponse({"job_id": job, "collection": coll}, status_code=202, headers={"Location": f"/v1/jobs/{job}"})


@router.get("/v1/documents/{doc_id:path}", summary="One document's status")
def get_document(doc_id: str, request: Request, collection: str | None = Query(None, max_length=64),
                 p: Principal = Depends(requires("documents.read"))):
    svc = service(request)
    return _doc_out(_visible(svc, p, _collection(svc, collection), doc_id))


@router.delete("/v1/documents/{doc_id:path}", status_code=202, summary="Delete a document (a job)")
def delete_document(doc_id: str, request: Request, collection: str | None = Query(None, max_length=64),
                    p: Principal = Depends(requires("documents.write"))):
    svc = service(request)
    coll = _collection(svc, collection)
    _visible(svc, p, coll, doc_id)
    job = svc.jobs.submit("api.delete", {"collection": coll, "doc_ids": [doc_id], "key": p.key.id}, total=1)
    return JSONResponse({"job_id": job, "collection": coll}, status_code=202, headers={"Location": f"/v1/jobs/{job}"})


@router.get("/v1/jobs/{job_id}", tags=["jobs"], summary="A background job: state, progress, error, result")
def get_job(job_id: str, request: Request, p: Principal = Depends(requires("jobs.read"))):
    return service(request).job(job_id[:64], p)


@router.get("/v1/collections", tags=["documents"], summary="Collections with document and chunk counts")
def list_collections(request: Request, p: Principal = Depends(requires("collections.read"))):
    rows = service(request).sp.store.list_collections()
    return {"collections": [{"name": r["name"], "documents": r["documents"], "chunks": r["chunks"],
                             "created_at": r["created_at"], "embedder": r["settings"].get("embedder")} for r in rows]}
