"""What the classifier returns: plain dataclasses the CLI, the HTTP API and the event log share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Candidate:
    label: str
    title: str
    confidence: float


@dataclass(frozen=True)
class Neighbour:
    """A labelled example close to the ticket (the evidence behind a kNN vote)."""

    text: str
    label: str
    similarity: float


@dataclass
class Classification:
    """One ticket's category. ``label`` is the most specific confident category: a leaf, or its
    parent when only the parent is sure (two-level taxonomies); below the threshold even for the
    parent, or unlike every labelled example (``novel``), ``needs_review`` is set and the ticket
    belongs in the triage queue."""

    ticket_id: str
    text: str
    label: str
    title: str
    confidence: float
    method: str
    explanation: str
    needs_review: bool
    candidates: list[Candidate] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    #: the best leaf and its confidence (equal to label/confidence unless backed off to the parent)
    leaf: str = ""
    leaf_confidence: float = 0.0
    parent: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: each member's probability of ``leaf`` (knn, logreg, tfidf, llm)
    members: dict[str, float] = field(default_factory=dict)
    #: similarity of the nearest labelled example, and whether it is below the out-of-scope line
    similarity: float = 0.0
    novel: bool = False
    taxonomy: str = ""
    latency_ms: float = 0.0


@dataclass
class RouteDecision:
    """Where a classified ticket goes. ``targets``: ``inbox:<queue>`` (the built-in queue),
    ``triage`` (the human triage queue) or an outbox target (``jira:SD``, ``webhook:https://…``)."""

    ticket_id: str
    label: str
    targets: list[str]
    rules: list[str] = field(default_factory=list)
    priority: str = "normal"
    department: str | None = None
    queue: str | None = None
    sla_due: str | None = None
    #: inbox item ids and outbox message ids created (empty for a dry run)
    inbox_items: list[str] = field(default_factory=list)
    outbox_messages: list[str] = field(default_factory=list)
    dispatched: bool = False
