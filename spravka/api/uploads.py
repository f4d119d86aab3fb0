"""Multipart uploads streamed to disk with a hard byte cap.

FastAPI's ``UploadFile`` spools the whole body to a temporary file before the endpoint runs, so a
2 GB upload would be read in full before we could refuse it. Here the request body is parsed as
it arrives: a declared ``Content-Length`` over the cap is refused before a byte is read, a file
with an unsupported extension is refused as soon as its part header arrives, and the bytes of a
file are counted as they are written, so a chunked or lying request is cut off at the cap.
Files land in a hidden staging folder and move into place only when the whole body was good.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from spravka.core.errors import InputError, SpravkaError
from spravka.ingest.metadata import is_metadata_file

#: multipart framing and small fields on top of the files themselves
_OVERHEAD = 256 * 1024
_MAX_FIELDS = 32
_MAX_FIELD_BYTES = 64 * 1024
_MAX_FILES = 50


class PayloadTooLarge(SpravkaError):
    code = "too_large"
    http_status = 413


class UnsupportedType(SpravkaError):
    code = "unsupported_type"
    http_status = 415

    def __init__(self, message: str, *, supported: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint or "supported: " + ", ".join(supported))
        self.supported = supported


@dataclass(slots=True)
class StagedFile:
    field: str
    filename: str
    path: Path
    size: int = 0


@dataclass
class StagedUpload:
    staging: Path
    files: list[StagedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def safe_filename(name: str) -> str:
    """A file name that is safe as a path component and as a document id."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[^\w.\-() ]+", "_", name).strip(" .")
    name = name.lstrip("._- ")
    if len(name) > 120:
        suffix = Path(name).suffix[:16]
        name = name[: 120 - len(suffix)].rstrip(" .") + suffix
    return name


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


async def receive_upload(request: Request, staging_root: Path, *, max_bytes: int, supported: list[str]) -> StagedUpload:
    """Parse a multipart/form-data body into a staging folder. The caller moves the files into
    place or calls :meth:`StagedUpload.discard`; on any error the staging folder is removed here."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise UnsupportedType("send the files as multipart/form-data (field 'file')", supported=supported)
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise InputError("invalid Content-Length header") from None
        if n > max_bytes + _OVERHEAD:
            raise PayloadTooLarge(f"the upload is {_mb(n)}, over the {_mb(max_bytes)} limit",
                                  hint="split it, or raise server.max_upload_mb")
    staging = staging_root / uuid.uuid4().hex
    staging.mkdir(parents=True, exist_ok=True)
    up = StagedUpload(staging)
    state: dict[str, Any] = {"headers": {}, "hname": b"", "hvalue": b"", "file": None, "fh": None,
                             "field": None, "buf": bytearray(), "skip": False, "total": 0, "body": 0, "ended": False}
    exts = set(supported)

    def on_part_begin() -> None:
        state.update(headers={}, hname=b"", hvalue=b"", file=None, fh=None, field=None, buf=bytearray(), skip=False)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["hname"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["hvalue"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["hname"].lower()] = state["hvalue"]
        state["hname"], state["hvalue"] = b"", b""

    def on_headers_finished() -> None:
        disp, opts = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = opts.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in opts:
            if len(up.fields) >= _MAX_FIELDS:
                raise InputError("too many form fields")
            state["field"] = name
            return
        raw = opts[b"filename"].decode("utf-8", "replace")
        if not raw:  # a form's empty file input
            state["skip"] = True
            return
        filename = safe_filename(raw)
        suffix = Path(filename).suffix.lower()
        if not filename or suffix not in exts or is_metadata_file(Path(filename)):
            raise UnsupportedType(f"unsupported file type '{suffix or raw[:80]}'", supported=sorted(exts))
        if len(up.files) >= _MAX_FILES:
            raise InputError(f"at most {_MAX_FILES} files per upload")
        path = staging / f"{len(up.files):03d}"
        state["file"] = StagedFile(name, filename, path)
        state["fh"] = path.open("wb")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["skip"]:
            return
        chunk = data[start:end]
        if state["fh"] is not None:
            state["total"] += len(chunk)
            if state["total"] > max_bytes:
                raise PayloadTooLarge(f"the upload is over the {_mb(max_bytes)} limit",
                                      hint="split it, or raise server.max_upload_mb")
            state["fh"].write(chunk)
            state["file"].size += len(chunk)
        elif state["field"] is not None:
            if len(state["buf"]) + len(chunk) > _MAX_FIELD_BYTES:
                raise InputError(f"form field '{state['field'][:40]}' is too long")
            state["buf"] += chunk

    def on_part_end() -> None:
        if state["fh"] is not None:
            state["fh"].close()
            up.files.append(state["file"])
            state["fh"] = None
        elif state["field"] is not None:
            up.fields[state["field"]] = bytes(state["buf"]).decode("utf-8", "replace")

    def on_end() -> None:
        state["ended"] = True

    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished, "on_end": on_end,
    })
    try:
        async for chunk in request.stream():
            state["body"] += len(chunk)
            if state["body"] > max_bytes + _OVERHEAD:
                raise PayloadTooLarge(f"the upload is over the {_mb(max_bytes)} limit",
                                      hint="split it, or raise server.max_upload_mb")
            if chunk:
                parser.write(chunk)
        parser.finalize()
        if not state["ended"]:
            raise InputError("the multipart body is incomplete")
    except ClientDisconnect:
        _close(state)
        up.discard()
        raise InputError("the client went away during the upload") from None
    except SpravkaError:
        _close(state)
        up.discard()
        raise
    except Exception as e:  # noqa: BLE001 - a malformed body is the client's problem, never a 500
        _close(state)
        up.discard()
        raise InputError(f"malformed multipart body: {type(e).__name__}: {str(e)[:200]}") from None
    return up


def _close(state: dict[str, Any]) -> None:
    fh = state.get("fh")
    if fh is not None:
        fh.close()
