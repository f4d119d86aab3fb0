"""Plain text and Markdown. Markdown front matter becomes metadata; headings become sections."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from spravka.core.errors import LoaderError
from spravka.core.types import Section
from spravka.ingest.loaders.base import LoadResult, RawDoc, read_text, register

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPH = re.compile(r"(\*\*|__|\*|_|~~|`)(?=\S)(.+?)(?<=\S)\1")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")


def split_front_matter(text: str) -> tuple[dict, str]:
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError as e:
        raise LoaderError(f"invalid YAML front matter: {e}", reason="metadata") from e
    if not isinstance(meta, dict):
        raise LoaderError("front matter must be a YAML mapping", reason="metadata")
    return meta, text[m.end() :]


def _strip_inline(line: str) -> str:
    line = _LINK.sub(r"\1", line)
    line = _HTML_TAG.sub("", line)
    for _ in range(2):
        line = _EMPH.sub(r"\2", line)
    return line


def markdown_sections(body: str) -> tuple[str, list[Section]]:
    """Split Markdown into sections at headings and strip inline markup.

    Returns the first H1 (a natural title) and the sections; a section's heading is the path of
    headings above it ("Возврат › Сроки"), which gives small chunks their context.
    """
    title = ""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    buf: list[str] = []
    in_code = False

    def flush() -> None:
        text = "\n".join(buf).strip()
        if text:
            sections.append(Section(text=text, heading=" › ".join(h for _, h in stack)))
        buf.clear()

    lines = body.split("\n")
    for i, raw in enumerate(lines):
        line = raw.rstrip()
        if line.strip().startswith("```") or line.strip().startswith("~~~"):
            in_code = not in_code
            continue
        if in_code:
            buf.append(line)
            continue
        m = _HEADING.match(line)
        setext = (
            i + 1 < len(lines) and line.strip() and _SETEXT.match(lines[i + 1]) and not _TABLE_SEP.match(line)
        )
        if m or setext:
            level = len(m.group(1)) if m else (1 if lines[i + 1].startswith("=") else 2)
            heading = _strip_inline(m.group(2) if m else line.strip())
            flush()
            if level == 1 and not title:
                title = heading
                stack = [(1, heading)]
                continue
            stack = [(lv, h) for lv, h in stack if lv < level] + [(level, heading)]
            continue
        if _SETEXT.match(line) and i > 0 and lines[i - 1].strip():
            continue
        if _TABLE_SEP.match(line):
            continue
        if line.strip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            line = " | ".join(_strip_inline(c) for c in cells)
        else:
            line = _strip_inline(line)
            line = re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "- ", line)
            line = re.sub(r"^\s*>\s?", "", line)
        buf.append(line)
    flush()
    # Headings carried the title; drop the H1 from the section paths to keep them short.
    if title:
        for s in sections:
            if s.heading == title:
                s.heading = ""
            elif s.heading.startswith(title + " › "):
                s.heading = s.heading[len(title) + 3 :]
    return title, sections


@register("markdown", ".md", ".markdown")
def load_markdown(path: Path) -> LoadResult:
    text, enc = read_text(path)
    meta, body = split_front_matter(text)
    title, sections = markdown_sections(body)
    return LoadResult([RawDoc(sections=sections, title=str(meta.pop("title", "") or title), metadata=meta)],
                      info={"encoding": enc})


@register("text", ".txt", ".text")
def load_text(path: Path) -> LoadResult:
    text, enc = read_text(path)
    first = next((ln.strip() for ln in text.split("\n") if ln.strip()), "")
    title = first if 0 < len(first) <= 120 and not first.endswith((".", ",", ";")) else ""
    return LoadResult([RawDoc(sections=[Section(text=text)], title=title)], info={"encoding": enc})
