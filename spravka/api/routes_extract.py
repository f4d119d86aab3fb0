"""Structured extraction over HTTP: a file (or text) in, schema-checked JSON out; reviews approved.

The extraction runs while the request waits (tens of seconds with a small local model): the
response is the record, its issues, and the review item when a person must look.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from spravka.api.security import requires, service
from spravka.api.service import Principal
from spravka.api.uploads import receive_upload
from spravka.core.errors import InputError

router = APIRouter()

_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary",
                            "description": "PDF (text layer or scan), PNG/JPG/TIFF, DOCX, HTML, TXT, MD"},
                   "schema": {"type": "string", "description": "invoice, contract, receipt"}}}}}}}


class ExtractText(BaseModel):
    text: str = Field(..., min_length=1, max_length=500_000)
    schema_name: str = Field("invoice", alias="schema", max_length=64)
    source: str = Field("text", max_length=300)


class ApproveBody(BaseModel):
    #: the corrected record; omitted: the proposed record is accepted as it is
    data: dict[str, Any] | None = None


def _builtin(name: str):
    from spravka.extract import builtin_names, load_schema

    if name not in builtin_names():  # a path would read files of the server: built-in names only
        raise InputError(f"unknown schema '{name[:64]}'", hint=f"one of: {', '.join(builtin_names())}")
    return load_schema(name)


@router.get("/v1/extract/schemas", tags=["extract"], summary="Built-in extraction schemas and their fields")
def schemas(p: Principal = Depends(requires("extract"))):
    from spravka.extract import describe_builtin

    return {"schemas": describe_builtin()}


@router.post("/v1/extract", tags=["extract"], openapi_extra=_BODY,
             summary="Extract a schema from an uploaded document (multipart field 'file')")
async def extract_file(request: Request, schema: str | None = Query(None, max_length=64),
                       p: Principal = Depends(requires("extract"))):
    from spravka.ingest.loaders.base import supported_extensions
    from spravka.models.ocr import IMAGE_SUFFIXES

    svc = service(request)
    staged = await receive_upload(request, svc.staging_dir(), max_bytes=svc.max_upload_bytes,
                                  supported=[*supported_extensions(), *IMAGE_SUFFIXES])
    try:
        sch = _builtin(staged.fields.get("schema") or schema or "invoice")
        if len(staged.files) != 1:
            raise InputError("send exactly one file in the multipart field 'file'")
        f = staged.files[0]
        path = f.path.rename(f.path.with_name("document" + Path(f.filename).suffix.lower()))  # readers go by suffix
        res = await run_in_threadpool(lambda: svc.sp.extractor.extract_file(path, sch, source=f.filename))
    finally:
        staged.discard()
    out = res.to_dict()
    if res.status == "failed":
        raise InputError(res.error or "the document could not be read")
    return out


@router.post("/v1/extract/text", tags=["extract"], summary="Extract a schema from text (JSON body)")
def extract_text(req: ExtractText, request: Request, p: Principal = Depends(requires("extract"))):
    svc = service(request)
    return svc.sp.extractor.extract_text(req.text, _builtin(req.schema_name), source=req.source).to_dict()


@router.post("/v1/extract/reviews/{item_id}/approve", tags=["extract"],
             summary="Accept a record after review (corrected, or as proposed); it is then delivered")
def approve(item_id: str, req: ApproveBody, request: Request, p: Principal = Depends(requires("inbox"))):
    from spravka.core.types import to_jsonable

    item = service(request).sp.extractor.approve(item_id[:64], req.data, p.key.name)
    return to_jsonable(item)
