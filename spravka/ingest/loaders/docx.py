"""DOCX through python-docx (MIT): headings by style become sections, tables become rows."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from spravka.core.errors import LoaderError
from spravka.core.types import Section
from spravka.ingest.loaders.base import LoadResult, RawDoc, register

_HEADING_STYLE = re.compile(r"^(?:heading|заголовок)\s*(\d)", re.IGNORECASE)


@register("docx", ".docx")
def load_docx(path: Path) -> LoadResult:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    if not zipfile.is_zipfile(path):
        raise LoaderError("the DOCX is corrupt (not a zip container)", reason="corrupt")
    document = docx.Document(str(path))
    title = (document.core_properties.title or "").strip()
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    buf: list[str] = []
    h1 = ""

    def flush() -> None:
        text = "\n".join(buf).strip()
        if text:
            sections.append(Section(text=text, heading=" › ".join(h for _, h in stack)))
        buf.clear()

    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            text = block.text.strip()
            if not text:
                continue
            style = (block.style.name if block.style is not None else "") or ""
            m = _HEADING_STYLE.match(style)
            if style.lower() == "title" or (m and m.group(1) == "1" and not h1):
                flush()
                h1 = h1 or text
                stack = []
                continue
            if m:
                level = int(m.group(1))
                flush()
                stack = [(lv, h) for lv, h in stack if lv < level] + [(level, text)]
                continue
            if "list" in style.lower():
                text = "- " + text
            buf.append(text)
        elif isinstance(block, Table):
            for row in block.rows:
                cells: list[str] = []
                for cell in row.cells:
                    t = cell.text.strip()
                    if not cells or cells[-1] != t:  # merged cells repeat their text
                        cells.append(t)
                if any(cells):
                    buf.append(" | ".join(cells))
    flush()
    return LoadResult([RawDoc(sections=sections, title=title or h1)])
