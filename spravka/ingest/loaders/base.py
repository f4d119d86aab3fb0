"""Loader registry and the shared helpers every loader uses (decoding, size checks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spravka.core.errors import LoaderError
from spravka.core.types import Section


@dataclass(slots=True)
class RawDoc:
    """What a loader extracts; metadata merging and cleaning happen in the pipeline.

    ``id`` is ``None`` for a whole-file document (the pipeline uses the relative path) and the
    record id for JSONL/CSV records.
    """

    sections: list[Section]
    title: str = ""
    id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LoadResult:
    docs: list[RawDoc]
    #: per-record failures inside a multi-record file: (record id or line, reason, message)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    #: facts about the file worth keeping (detected encoding, page count)
    info: dict[str, Any] = field(default_factory=dict)


Loader = Callable[[Path], LoadResult]
_REGISTRY: dict[str, tuple[str, Loader]] = {}


def register(fmt: str, *extensions: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        for ext in extensions:
            _REGISTRY[ext] = (fmt, fn)
        return fn

    return deco


def format_of(path: Path) -> str | None:
    _ensure_loaded()
    entry = _REGISTRY.get(path.suffix.lower())
    return entry[0] if entry else None


def _ensure_loaded() -> None:
    if not _REGISTRY:
        from spravka.ingest.loaders import docx, html, pdf, tabular, text  # noqa: F401


def load_file(path: Path, *, max_bytes: int | None = None) -> tuple[str, LoadResult]:
    """Load ``path`` with the loader for its extension. Returns ``(format, result)``."""
    _ensure_loaded()
    entry = _REGISTRY.get(path.suffix.lower())
    if entry is None:
        raise LoaderError(
            f"unsupported file type '{path.suffix or path.name}'",
            reason="unsupported",
            hint="supported: " + ", ".join(sorted(_REGISTRY)),
        )
    size = path.stat().st_size
    if size == 0:
        raise LoaderError("the file is empty", reason="empty")
    if max_bytes is not None and size > max_bytes:
        raise LoaderError(
            f"the file is {size / 2**20:.0f} MB, over the {max_bytes / 2**20:.0f} MB limit",
            reason="too_large",
            hint="raise ingest.max_file_mb or split the file",
        )
    fmt, fn = entry
    try:
        result = fn(path)
    except LoaderError:
        raise
    except MemoryError as e:
        raise LoaderError("the file is too large to parse in memory", reason="too_large") from e
    except Exception as e:  # noqa: BLE001 - third-party parsers raise anything on corrupt input
        raise LoaderError(
            f"cannot parse {fmt.upper()}: {type(e).__name__}: {str(e)[:200]}", reason="corrupt"
        ) from e
    if not any(s.text.strip() for d in result.docs for s in d.sections) and not result.failures:
        raise LoaderError("no text found in the file", reason="empty")
    return fmt, result


def load_file_or_ocr(path: Path, *, max_bytes: int | None = None, ocr: Any = None,
                     max_pages: int = 200) -> tuple[str, LoadResult]:
    """:func:`load_file`, and a PDF without a text layer (a scan) read by ``ocr`` (a
    :class:`~spravka.models.ocr.Tesseract`; None: no OCR), one section per page. ``info["ocr"]``
    says OCR was used. Without tesseract, the ``no_text`` failure says how to get it."""
    try:
        return load_file(path, max_bytes=max_bytes)
    except LoaderError as e:
        if e.reason != "no_text" or ocr is None:
            raise
        no_text = e
    from spravka.core.errors import ConfigError

    if not ocr.available():
        raise LoaderError(no_text.message, reason="no_text",
                          hint="install tesseract (apt-get install tesseract-ocr tesseract-ocr-rus) to read scans")
    try:
        pages = ocr.pages(path, max_pages=max_pages)
    except ConfigError as e:  # pypdfium2 missing, or a language pack
        raise LoaderError(f"the PDF has no text layer and OCR is not set up: {e.message}", reason="no_text",
                          hint=e.hint) from e
    sections = [Section(text=t.strip(), page=i) for i, t in enumerate(pages, start=1) if t.strip()]
    if not sections:
        raise LoaderError("the PDF has no text layer and OCR found no text in it", reason="no_text")
    return "pdf", LoadResult([RawDoc(sections=sections)], info={"pages": len(pages), "ocr": True})


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode bytes of a text file: UTF-8 (with or without BOM), else a detected legacy encoding.

    Russian files still arrive in cp1251 or koi8-r. A file that decodes to nothing sensible is
    refused with reason ``encoding`` instead of being indexed as mojibake.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\x00" in data[:4096]:
        for bom, enc in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
            if data.startswith(bom):
                return data[2:].decode(enc, errors="strict"), enc
        raise LoaderError("this looks like a binary file, not text", reason="encoding")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 2**20]).best()
    if best is None or best.encoding is None:
        raise LoaderError(
            "cannot detect the text encoding", reason="encoding", hint="save the file as UTF-8"
        )
    enc = best.encoding
    try:
        text = data.decode(enc)
    except (UnicodeDecodeError, LookupError) as e:
        raise LoaderError(f"the file is not valid {enc}", reason="encoding", hint="save it as UTF-8") from e
    letters = sum(ch.isalpha() for ch in text[:20000])
    if letters < 0.3 * min(len(text), 20000):
        raise LoaderError(
            f"decoded as {enc} the file is mostly not letters: wrong encoding or binary data",
            reason="encoding",
            hint="save the file as UTF-8",
        )
    return text, enc


def read_text(path: Path) -> tuple[str, str]:
    return decode_text(path.read_bytes())


def supported_extensions() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)
