"""Plain data types shared by every layer.

Dataclasses, not pydantic models: they are created by the hundred thousand during ingestion and
must stay cheap. Interfaces convert them to JSON with :func:`to_jsonable`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

PUBLIC_GROUP = "public"
DEFAULT_COLLECTION = "default"


@dataclass(slots=True)
class Section:
    """A run of text under one heading (or one PDF page)."""

    text: str
    heading: str = ""
    page: int | None = None


@dataclass(slots=True)
class Document:
    """A loaded, cleaned document before chunking.

    ``id`` is stable and human-readable: a file's path relative to the ingested folder, or a JSONL
    record's ``id`` field, so people can write golden sets by hand.
    """

    id: str
    title: str
    sections: list[Section]
    metadata: dict[str, Any] = field(default_factory=dict)
    access_groups: tuple[str, ...] = (PUBLIC_GROUP,)
    source: str = ""
    format: str = ""

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections if s.text)


@dataclass(slots=True)
class Chunk:
    """A small, sentence-aligned piece of a document (about 100-130 tokens).

    ``start``/``end`` are character offsets into :attr:`Document.text`, so the answer step can widen
    the context to a parent window (neighbouring chunks) without storing overlaps twice.
    """

    doc_id: str
    ord: int
    text: str
    title: str = ""
    heading: str = ""
    page: int | None = None
    start: int = 0
    end: int = 0
    tokens: int = 0

    @property
    def id(self) -> str:
        return f"{self.doc_id}#{self.ord}"

    def embed_text(self) -> str:
        """The text the embedder sees: title and heading give a small chunk its context."""
        parts = []
        if self.title and not self.text.startswith(self.title):
            parts.append(self.title)
        if self.heading and self.heading != self.title and not self.text.startswith(self.heading):
            parts.append(self.heading)
        parts.append(self.text)
        return "\n".join(parts)


class DocStatus(StrEnum):
    PENDING = "pending"
    OK = "ok"
    DUPLICATE = "duplicate"
    FAILED = "failed"


@dataclass(slots=True)
class DocumentRecord:
    """What the store knows about a document: its status, hash and metadata (not its chunks)."""

    collection: str
    id: str
    title: str
    status: DocStatus
    source: str = ""
    format: str = ""
    content_hash: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    access_groups: tuple[str, ...] = (PUBLIC_GROUP,)
    n_chunks: int = 0
    error: str | None = None
    reason: str | None = None
    duplicate_of: str | None = None
    updated_at: str = ""


@dataclass(slots=True)
class Hit:
    """One search result: a chunk with its fused score and the per-signal scores behind it."""

    chunk_id: str
    doc_id: str
    collection: str
    text: str
    title: str
    heading: str
    score: float
    rank: int = 0
    page: int | None = None
    start: int = 0
    end: int = 0
    ord: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    access_groups: tuple[str, ...] = (PUBLIC_GROUP,)
    signals: dict[str, float] = field(default_factory=dict)
    #: other documents whose passage here is the same text (folded into this hit by the search)
    duplicates: list[str] = field(default_factory=list)

    @property
    def url(self) -> str | None:
        """Where the document lives for a reader (its ``url`` or ``source_url`` metadata), if anywhere."""
        url = (self.metadata or {}).get("url") or (self.metadata or {}).get("source_url")
        return url if isinstance(url, str) and url else None


@dataclass(slots=True)
class SearchResult:
    query: str
    collection: str
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class IngestReport:
    """Per-run summary; per-document detail lives in the store's document status."""

    collection: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    failed: int = 0
    pruned: int = 0
    chunks: int = 0
    embedded: int = 0
    embed_cache_hits: int = 0
    seconds: float = 0.0
    #: of which: bringing the search index's derived structures up to date at the end
    index_seconds: float = 0.0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (doc id, reason, message)


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, enums, tuples → JSON-friendly structures."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, StrEnum):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    return obj


class AnswerStatus(StrEnum):
    ANSWERED = "answered"
    #: the knowledge base does not hold the answer (confidence below the gate)
    REFUSED = "refused"
    #: a human should take over (refused and escalation is on, or the user asked for a human)
    ESCALATE = "escalate"


@dataclass(slots=True)
class Citation:
    """A source the answer stands on; ``n`` is the number used in the text ([1], [2], ...)."""

    n: int
    doc_id: str
    title: str
    snippet: str
    chunk_id: str = ""
    heading: str = ""
    page: int | None = None
    start: int = 0
    end: int = 0
    score: float = 0.0


@dataclass(slots=True)
class Answer:
    question: str
    text: str
    status: AnswerStatus
    confidence: float
    citations: list[Citation] = field(default_factory=list)
    #: extractive | generative | refusal
    mode: str = "extractive"
    collection: str = DEFAULT_COLLECTION
    id: str = ""
    language: str = "ru"
    timings_ms: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    cost: float = 0.0
    #: why the gate decided as it did, which checks failed, fallbacks taken
    notes: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    #: with a refusal: the nearest documents a person may open (``answer.sources.related_documents``)
    related: list[dict[str, Any]] = field(default_factory=list)
    #: the answer cache's part: ``{"result": "hit", "match": "exact"|"semantic", "saved_llm_calls": …}``
    #: or ``{"result": "miss"}``; empty when the cache is off
    cache: dict[str, Any] = field(default_factory=dict)
