"""The query log: one row per answered, refused or escalated question.

An ``answer`` event (written by the answer pipeline) holds the normalised question, the
collection, the caller's channel and role (never a key or a contact), the retrieved chunk ids and
scores, the decision, the latency per stage, tokens, cost and the cache's part. ``feedback``
events (👍/👎 from the API or a bot) and ``escalation`` events are joined by answer id.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from spravka.core.text.normalize import cache_key_text

#: the event kinds the retention setting purges (audit events such as key.create stay)
QUERY_LOG_KINDS = ("answer", "search", "feedback", "api.answer", "escalation", "escalation.answered")
_BAD = {"down", "-1", "bad", "negative"}


def since_iso(days: int | None) -> str | None:
    if not days:
        return None
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat(timespec="seconds")


@dataclass
class QueryRow:
    ts: str
    answer_id: str
    collection: str
    question: str
    normalized: str
    decision: str
    confidence: float
    mode: str
    channel: str = ""
    role: str = ""
    latency_ms: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)
    tokens: int = 0
    llm_calls: int = 0
    cost: float = 0.0
    cache: str = ""
    saved_llm_calls: int = 0
    hits: list[list[Any]] = field(default_factory=list)
    cited: list[str] = field(default_factory=list)
    rating: str | None = None
    comment: str | None = None
    escalated: bool = False

    @property
    def day(self) -> str:
        return self.ts[:10]

    @property
    def unanswered(self) -> bool:
        return self.decision in ("refused", "escalate")

    @property
    def badly_rated(self) -> bool:
        return (self.rating or "") in _BAD

    def csv_row(self) -> dict[str, Any]:
        return {"ts": self.ts, "answer_id": self.answer_id, "collection": self.collection, "channel": self.channel,
                "role": self.role, "question": self.question, "decision": self.decision,
                "confidence": self.confidence, "mode": self.mode, "latency_ms": self.latency_ms,
                "tokens": self.tokens, "llm_calls": self.llm_calls, "cost": self.cost, "cache": self.cache,
                "rating": self.rating or "", "escalated": int(self.escalated),
                "top_hit": self.hits[0][0] if self.hits else "", "top_score": self.hits[0][1] if self.hits else ""}


def load_rows(store: Any, *, days: int | None = 30, collection: str | None = None,
              limit: int = 200_000) -> list[QueryRow]:
    """The query log of the last ``days`` (None: all), oldest first."""
    since = since_iso(days)
    feedback: dict[str, dict[str, Any]] = {}
    for ev in store.events(kind="feedback", limit=limit, since=since):
        feedback.setdefault(str(ev.get("answer_id")), ev)  # newest first: the latest rating wins
    escalated = {str(ev.get("answer_id")) for ev in store.events(kind="escalation", limit=limit, since=since)
                 if ev.get("answer_id")}
    api = {str(ev.get("answer_id")): ev for ev in store.events(kind="api.answer", limit=limit, since=since)}
    rows = []
    for ev in store.events(kind="answer", limit=limit, since=since):
        if collection and ev.get("collection") != collection:
            continue
        aid = str(ev.get("answer_id") or "")
        caller = ev.get("caller") or {}
        via = api.get(aid) or {}
        tokens = ev.get("tokens") or {}
        fb = feedback.get(aid) or {}
        timings = ev.get("timings_ms") or {}
        q = ev.get("question") or ""
        rows.append(QueryRow(
            ts=ev.get("ts", ""), answer_id=aid, collection=ev.get("collection") or "", question=q,
            normalized=ev.get("normalized") or cache_key_text(q), decision=ev.get("decision") or "",
            confidence=float(ev.get("confidence") or 0.0), mode=ev.get("mode") or "",
            channel=caller.get("channel") or via.get("channel") or "", role=caller.get("role") or "",
            latency_ms=float(timings.get("total_ms") or 0.0), timings_ms=timings,
            tokens=int(tokens.get("total", 0)), llm_calls=int(tokens.get("calls", 0)),
            cost=float(ev.get("cost") or 0.0), cache=ev.get("cache") or "",
            saved_llm_calls=int((ev.get("saved") or {}).get("llm_calls", 0)),
            hits=ev.get("hits") or [], cited=ev.get("cited") or [],
            rating=fb.get("rating"), comment=fb.get("comment"),
            escalated=aid in escalated or ev.get("decision") == "escalate"))
    rows.reverse()
    return rows


def purge(store: Any, days: int) -> int:
    """Delete query-log events older than ``days``."""
    before = since_iso(days)
    return store.purge_events(before, QUERY_LOG_KINDS) if before else 0
