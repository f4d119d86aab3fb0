"""PDF with a text layer, through pypdf (BSD). One section per page, so citations carry pages.

Running headers and footers (a line repeated on most pages) are removed. A PDF without a text
layer is refused with reason ``no_text``: it needs OCR, which is a separate capability.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from spravka.core.errors import LoaderError
from spravka.core.types import Section
from spravka.ingest.loaders.base import LoadResult, RawDoc, register

logging.getLogger("pypdf").setLevel(logging.ERROR)


def _furniture(pages: list[list[str]]) -> set[str]:
    """Lines that open or close most pages: running headers and footers."""
    if len(pages) < 3:
        return set()
    edge: Counter[str] = Counter()
    for lines in pages:
        for ln in set(lines[:2] + lines[-2:]):
            edge[ln] += 1
    return {ln for ln, n in edge.items() if n >= max(3, 0.6 * len(pages)) and len(ln) < 120}


@register("pdf", ".pdf")
def load_pdf(path: Path) -> LoadResult:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise LoaderError("the PDF is password-protected", reason="encrypted")
            except LoaderError:
                raise
            except Exception as e:  # noqa: BLE001
                raise LoaderError("the PDF is password-protected", reason="encrypted") from e
        pages_text: list[list[str]] = []
        for page in reader.pages:
            txt = page.extract_text() or ""
            pages_text.append([ln.strip() for ln in txt.split("\n") if ln.strip()])
    except PdfReadError as e:
        raise LoaderError(f"the PDF is corrupt: {e}", reason="corrupt") from e
    drop = _furniture(pages_text)
    sections = []
    for i, lines in enumerate(pages_text, start=1):
        kept = [ln for ln in lines if ln not in drop]
        if kept:
            sections.append(Section(text="\n".join(kept), page=i))
    if not sections:
        raise LoaderError(
            "the PDF has no text layer (a scan?)", reason="no_text",
            hint="scans are read by OCR when tesseract is installed (ingest.ocr)"
        )
    meta: Any = reader.metadata or {}
    title = str(meta.get("/Title") or "").strip()
    return LoadResult([RawDoc(sections=sections, title=title)], info={"pages": len(pages_text)})
