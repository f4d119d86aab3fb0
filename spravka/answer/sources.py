"""Numbered sources for a generative prompt: each hit widened to its parent window.

A chunk of ~120 tokens is right for retrieval and too small for answering: the condition of a
rule is often in the previous sentence, the exception in the next one. Each source is the hit
chunk plus its neighbouring chunks of the same document (offsets from ``index.chunk_spans``,
text from ``store.document_text``), bounded in characters. Hits whose chunk is already inside an
earlier window are not repeated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from spravka.core.types import Hit


class _Texts(Protocol):
    def document_text(self, collection: str, doc_id: str) -> str | None: ...


@dataclass(slots=True)
class Source:
    n: int
    hit: Hit
    text: str
    #: the window's character offsets in the document
    start: int
    end: int
    #: chunks (``doc#ord``) inside the window
    chunk_ids: list[str] = field(default_factory=list)

    def render(self) -> str:
        head = self.hit.title
        if self.hit.heading and self.hit.heading != self.hit.title:
            head += f" — {self.hit.heading}"
        return f"[{self.n}] {head}\n{self.text}"


def parent_window(
    hit: Hit, spans: Sequence[tuple[int, int, int]], max_chars: int
) -> tuple[int, int, list[int]]:
    """Offsets of the hit chunk grown by whole neighbouring chunks, alternately after and before
    (the continuation of a rule matters more), while the window fits ``max_chars``."""
    by_ord = {o: (a, b) for o, a, b in spans}
    start, end = hit.start, hit.end
    ords = [hit.ord]
    lo, hi = hit.ord - 1, hit.ord + 1
    grew = True
    while grew:
        grew = False
        for o in (hi, lo):
            if o not in by_ord:
                continue
            a, b = by_ord[o]
            ns, ne = min(start, a), max(end, b)
            if ne - ns > max_chars:
                continue
            start, end = ns, ne
            ords.append(o)
            grew = True
            if o == hi:
                hi += 1
            else:
                lo -= 1
    return start, end, sorted(ords)


def build_sources(
    hits: Sequence[Hit],
    collection: str,
    index: object,
    store: _Texts,
    *,
    max_sources: int = 3,
    window_chars: int = 1200,
) -> list[Source]:
    # Every backend has ``chunk_spans`` (not part of the SearchIndex port): without it, chunks alone.
    spans_of = getattr(index, "chunk_spans", None)
    texts: dict[str, str | None] = {}
    out: list[Source] = []
    for hit in hits:
        if len(out) >= max_sources:
            break
        if any(hit.chunk_id in s.chunk_ids for s in out):
            continue
        if hit.doc_id not in texts:
            texts[hit.doc_id] = store.document_text(collection, hit.doc_id)
        doc = texts[hit.doc_id]
        if not doc or spans_of is None or doc[hit.start : hit.end] != hit.text:
            # No stored text (or it changed under us): the chunk alone is still a valid source.
            text = hit.text[:window_chars]
            out.append(Source(len(out) + 1, hit, text, hit.start, hit.end, [hit.chunk_id]))
            continue
        start, end, ords = parent_window(hit, spans_of(collection, hit.doc_id), window_chars)
        text = doc[start:end]
        if len(text) > window_chars:  # a single oversized chunk
            text = text[:window_chars].rsplit(" ", 1)[0] + " …"
        out.append(Source(len(out) + 1, hit, text.strip(), start, end, [f"{hit.doc_id}#{o}" for o in ords]))
    return out


def related_documents(hits: Sequence[Hit], n: int = 3) -> list[dict[str, str | None]]:
    """The ``n`` best distinct documents among a refusal's hits, for a person to open themselves
    (``doc_id``, ``title``, ``heading``, ``url`` from the document's metadata). Never an answer:
    the hits passed no gate. They are the caller's own search results, so nothing crosses groups."""
    out: list[dict[str, str | None]] = []
    for h in hits:
        if len(out) >= n:
            break
        if any(r["doc_id"] == h.doc_id for r in out):
            continue
        out.append({"doc_id": h.doc_id, "title": h.title or h.doc_id,
                    "heading": h.heading if h.heading != h.title else "", "url": h.url})
    return out
