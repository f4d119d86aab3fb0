"""Request and response bodies of the HTTP API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from spravka.core.types import Answer, Citation, Hit, SearchResult

Collection = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
Scalar = str | int | float
#: ``{"department": "hr", "doc_type": ["faq", "policy"], "date": {"gte": "2024-01-01"}}``
Filters = dict[
    Annotated[str, StringConstraints(max_length=64)],
    Scalar | list[Scalar] | dict[Literal["eq", "ne", "in", "gt", "gte", "lt", "lte"], Scalar | list[Scalar]],
]


def clean_text(value: str) -> str:
    """Lone surrogates and NUL cannot be stored or logged: replace them."""
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", " ")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AskRequest(_Strict):
    question: str = Field(..., min_length=1, max_length=4000, description="The question, in Russian or English.")
    collection: Collection | None = Field(None, description="Collection (knowledge base); default from settings.")
    filters: Filters | None = Field(None, max_length=16, description="Metadata filters (access groups come from the key).")
    mode: Literal["auto", "extractive", "generative"] | None = Field(
        None, description="auto: generative when a language model is available, else extractive quotes.")
    stream: bool = Field(False, description="Server-sent events: delta, reset, answer, error.")
    escalate: bool | None = Field(None, description="Below the confidence threshold, hand over to a human.")

    @field_validator("question")
    @classmethod
    def _question(cls, v: str) -> str:
        v = clean_text(v)
        if not v.strip():
            raise ValueError("the question is empty")
        return v


class SearchRequest(_Strict):
    query: str = Field(..., min_length=1, max_length=4000)
    collection: Collection | None = None
    filters: Filters | None = Field(None, max_length=16)
    k: int = Field(5, ge=1, le=50)
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"

    @field_validator("query")
    @classmethod
    def _query(cls, v: str) -> str:
        v = clean_text(v)
        if not v.strip():
            raise ValueError("the query is empty")
        return v


class CitationOut(BaseModel):
    n: int
    doc_id: str
    title: str
    snippet: str
    chunk_id: str = ""
    heading: str = ""
    page: int | None = None
    score: float = 0.0
    url: str | None = None

    @classmethod
    def of(cls, c: Citation, hits: list[Hit]) -> CitationOut:
        hit = next((h for h in hits if h.chunk_id == c.chunk_id or h.doc_id == c.doc_id), None)
        return cls(n=c.n, doc_id=c.doc_id, title=c.title, snippet=c.snippet, chunk_id=c.chunk_id, heading=c.heading,
                   page=c.page, score=round(float(c.score), 4), url=hit.url if hit else None)


class RelatedOut(BaseModel):
    doc_id: str
    title: str
    heading: str = ""
    url: str | None = None


class AskResponse(BaseModel):
    id: str = Field(..., description="Answer id: send it with feedback and escalations.")
    answer: str
    status: Literal["answered", "refused", "escalate"]
    confidence: float
    mode: str
    language: str
    collection: str
    citations: list[CitationOut]
    #: with a refusal: the documents the search found nearest, which a person may open themselves
    #: (never quoted as an answer; only documents the caller may read)
    related: list[RelatedOut] = Field(default_factory=list, description="With a refusal: the nearest documents, "
                                      "to look at; not an answer.")
    timings_ms: dict[str, float] = {}
    usage: dict[str, int] = {}
    cost: float = 0.0

    @classmethod
    def of(cls, a: Answer) -> AskResponse:
        return cls(id=a.id, answer=a.text, status=str(a.status), confidence=a.confidence, mode=a.mode,  # type: ignore[arg-type]
                   language=a.language, collection=a.collection,
                   citations=[CitationOut.of(c, a.hits) for c in a.citations],
                   related=[RelatedOut(**r) for r in a.related],
                   timings_ms=a.timings_ms,
                   usage=dict(a.tokens or {}), cost=a.cost)


class HitOut(BaseModel):
    rank: int
    chunk_id: str
    doc_id: str
    title: str
    heading: str
    text: str
    score: float
    page: int | None = None
    metadata: dict[str, Any] = {}
    access_groups: list[str] = []
    #: other documents with the same text, folded into this hit
    duplicates: list[str] = []

    @classmethod
    def of(cls, h: Hit) -> HitOut:
        return cls(rank=h.rank, chunk_id=h.chunk_id, doc_id=h.doc_id, title=h.title, heading=h.heading, text=h.text,
                   score=round(float(h.score), 4), page=h.page, metadata=h.metadata, access_groups=list(h.access_groups),
                   duplicates=list(h.duplicates))


class SearchResponse(BaseModel):
    query: str
    collection: str
    hits: list[HitOut]
    timings_ms: dict[str, float] = {}

    @classmethod
    def of(cls, r: SearchResult) -> SearchResponse:
        return cls(query=r.query, collection=r.collection, hits=[HitOut.of(h) for h in r.hits], timings_ms=r.timings_ms)


class FeedbackRequest(_Strict):
    answer_id: str = Field(..., min_length=1, max_length=64)
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=2000)

    @field_validator("comment")
    @classmethod
    def _comment(cls, v: str | None) -> str | None:
        return clean_text(v) if v is not None else None


class EscalationRequest(_Strict):
    question: str = Field(..., min_length=1, max_length=4000)
    answer_id: str | None = Field(None, max_length=64)
    contact: str = Field(..., min_length=1, max_length=300, description="How the operator reaches the person.")
    comment: str | None = Field(None, max_length=2000)
    collection: Collection | None = None
    language: Literal["ru", "en"] | None = None

    @field_validator("question", "contact", "comment")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = clean_text(v)
        if not v.strip():
            raise ValueError("must not be blank")
        return v.strip()


class DocumentIds(_Strict):
    collection: Collection | None = None
    ids: list[Annotated[str, StringConstraints(min_length=1, max_length=1000)]] = Field(..., min_length=1, max_length=1000)


class KeyCreate(_Strict):
    name: str = Field(..., min_length=1, max_length=64)
    role: Literal["admin", "editor", "user", "bot"]
    groups: list[Annotated[str, StringConstraints(max_length=64)]] = Field(default_factory=list, max_length=100)
    rate_per_minute: float | None = Field(None, gt=0, le=1_000_000)


class InboxResolve(_Strict):
    resolution: dict[str, Any] = Field(default_factory=dict, description="What was done, e.g. {\"answer\": \"...\"}.")


class InboxDismiss(_Strict):
    reason: str = Field(..., min_length=1, max_length=2000)


# ---- OpenAI-compatible chat completions ------------------------------------------------------------

class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if isinstance(self.content, list):
            return " ".join(str(p.get("text", "")) for p in self.content if isinstance(p, dict) and p.get("type") == "text")
        return ""


class ChatRequest(BaseModel):
    """The OpenAI request; ``model`` names the collection. Sampling parameters are accepted and
    ignored: answers follow the server's settings."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(..., min_length=1, max_length=128)
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=200)
    stream: bool = False
    user: str | None = Field(None, max_length=256)
