"""Creating escalations, sending them to the configured targets, and sending the operator's answer back."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from spravka.core.errors import InputError, NotFoundError
from spravka.core.settings import EscalateSettings
from spravka.core.types import Answer, Hit
from spravka.escalate.hooks import HelpdeskComment
from spravka.store.queues import Inbox, InboxItem, InboxState, Outbox

log = logging.getLogger(__name__)

TYPE = "escalation"
_SNIPPET = 500


def chunk_dict(h: Hit) -> dict[str, Any]:
    return {"chunk_id": h.chunk_id, "doc_id": h.doc_id, "title": h.title, "score": round(float(h.score), 4),
            "text": h.text[:_SNIPPET]}


class Escalations:
    """``db`` gives the one transaction around the inbox item and its outbox messages."""

    def __init__(self, inbox: Inbox, outbox: Outbox, db: Any, settings: EscalateSettings, *,
                 log_event: Callable[[str, dict[str, Any], str | None], Any]) -> None:
        self.inbox = inbox
        self.outbox = outbox
        self.db = db
        self.settings = settings
        self.log_event = log_event

    # ---- targets -----------------------------------------------------------------------------
    def targets(self) -> list[str]:
        """Outbox targets of every new escalation (the inbox is always one)."""
        out = []
        for t in self.settings.targets:
            if t == "webhook":
                if self.settings.webhook_url:
                    out.append(f"webhook:{self.settings.webhook_url}")
            else:
                out.append(f"{t}:default")
        return out

    # ---- create ------------------------------------------------------------------------------
    def create(
        self,
        question: str,
        *,
        collection: str,
        answer: Answer | None = None,
        answer_id: str | None = None,
        conversation: list[dict[str, Any]] | None = None,
        chunks: list[dict[str, Any]] | None = None,
        contact: str | dict[str, Any] | None = None,
        channel: str = "api",
        reply_to: str | None = None,
        comment: str | None = None,
        language: str | None = None,
        reason: str = "user_request",
        caller: dict[str, Any] | None = None,
        answer_text: str | None = None,
        answer_status: str | None = None,
    ) -> InboxItem:
        """An escalation, once per answer id: a second call for the same answer returns the first
        item (and queues nothing new)."""
        answer_id = answer_id or (answer.id if answer is not None else None)
        dedup = f"{TYPE}:{answer_id}" if answer_id else None
        if answer is not None and chunks is None:
            chunks = [chunk_dict(h) for h in answer.hits]
        payload: dict[str, Any] = {
            "question": question, "answer_id": answer_id, "reason": reason, "channel": channel,
            "reply_to": reply_to, "contact": contact, "comment": comment,
            "language": language or (answer.language if answer is not None else None),
            "answer": answer.text if answer is not None else answer_text,
            "answer_status": str(answer.status) if answer is not None else answer_status,
            "confidence": answer.confidence if answer is not None else None,
            "cited": [c.doc_id for c in answer.citations] if answer is not None else [],
            "conversation": conversation or [], "chunks": chunks or [],
        }
        if caller:
            payload["caller"] = {k: v for k, v in caller.items() if k in ("channel", "role", "key", "key_name")}
        targets = self.targets()
        # one transaction (SQLite: BEGIN IMMEDIATE, other processes wait; PostgreSQL: the dedup key
        # conflict makes a concurrent request wait, then find the first): the item and its deliveries
        # exist together or not at all, and a second request for the same answer finds the first
        with self.db.transaction():
            existing = self.find(answer_id) if answer_id else None
            if existing is not None:
                return existing
            item = self.inbox.add(TYPE, question[:200], payload, collection=collection, ref=answer_id, dedup_key=dedup,
                                  priority=1 if reason == "user_request" else 0)
            ticket = self.ticket(item)
            for target in targets:
                self.outbox.enqueue(target, ticket, idempotency_key=f"{TYPE}:{item.id}:{target.split(':', 1)[0]}")
        # the event log never holds the contact or the conversation (personal data stays in the item)
        self.log_event(TYPE, {"inbox_id": item.id, "answer_id": answer_id, "reason": reason, "channel": channel,
                              "targets": [t.split(":", 1)[0] for t in targets],
                              "key": (caller or {}).get("key")}, collection)
        return item

    @staticmethod
    def ticket(item: InboxItem) -> dict[str, Any]:
        """What an outside system receives (Jira and Zendesk senders format it to their API)."""
        p = item.payload
        return {"escalation_id": item.id, "question": p.get("question"), "answer": p.get("answer"),
                "answer_status": p.get("answer_status"), "reason": p.get("reason"), "channel": p.get("channel"),
                "contact": p.get("contact"), "comment": p.get("comment"), "language": p.get("language"),
                "collection": item.collection, "conversation": p.get("conversation", []),
                "chunks": p.get("chunks", []), "created_at": item.created_at}

    # ---- read --------------------------------------------------------------------------------
    def find(self, answer_id: str) -> InboxItem | None:
        rows = self.db.query("SELECT id FROM inbox WHERE dedup_key=?", (f"{TYPE}:{answer_id}",))
        return self.inbox.get(rows[0][0]) if rows else None

    def get(self, id_or_answer_id: str) -> InboxItem:
        item = self.inbox.get(id_or_answer_id)
        if item is None or item.type != TYPE:
            item = self.find(id_or_answer_id)
        if item is None:
            raise NotFoundError(f"escalation '{id_or_answer_id[:64]}' not found")
        return item

    @staticmethod
    def public(item: InboxItem) -> dict[str, Any]:
        """What the person who asked may see (the widget polls it): state and the operator's answer."""
        res = item.resolution or {}
        return {"id": item.id, "state": str(item.state), "answer_id": item.payload.get("answer_id"),
                "question": item.payload.get("question"),
                "answer": res.get("answer") if item.state == InboxState.DONE else None,
                "follow_ups": [u.get("text") for u in res.get("follow_ups") or []] if item.state == InboxState.DONE else [],
                "updated_at": item.updated_at}

    # ---- the operator's answer goes back ------------------------------------------------------
    def on_resolved(self, item: InboxItem) -> None:
        """Inbox handler: the operator's answer to the channel the question came from."""
        text = str((item.resolution or {}).get("answer") or "").strip()
        reply_to = item.payload.get("reply_to")
        if not text:
            return
        if reply_to:
            self.outbox.enqueue(reply_to, {"text": text, "escalation_id": item.id,
                                           "question": item.payload.get("question"),
                                           "answer_id": item.payload.get("answer_id")},
                                idempotency_key=f"{TYPE}-reply:{item.id}")
        self.log_event("escalation.answered", {"inbox_id": item.id, "answer_id": item.payload.get("answer_id"),
                                               "channel": item.payload.get("channel"),
                                               "by": (item.resolution or {}).get("by")}, item.collection)

    # ---- replies from a helpdesk (spravka.escalate.hooks) -------------------------------------------
    def by_ticket(self, system: str, ticket: str, external_id: str = "") -> InboxItem | None:
        """The escalation that became ``system``'s ticket ``ticket`` (the key the helpdesk returned
        when the outbox delivered it), or whose idempotency key is ``external_id`` (Zendesk)."""
        field = {"jira": "issueKey", "zendesk": "ticket_id"}[system]
        rows = self.db.query(
            "SELECT payload FROM outbox WHERE target LIKE ? AND state='delivered'"
            f" AND {self.db.json_text('response')}=? ORDER BY created_at DESC LIMIT 1",
            (f"{system}:%", field, ticket),
        ) if ticket else []
        if not rows and external_id:
            rows = self.db.query("SELECT payload FROM outbox WHERE target LIKE ? AND idempotency_key=?",
                                 (f"{system}:%", external_id))
        if not rows:
            return None
        item = self.inbox.get(str(json.loads(rows[0][0]).get("escalation_id") or ""))
        return item if item is not None and item.type == TYPE else None

    def helpdesk_reply(self, c: HelpdeskComment) -> dict[str, Any]:
        """An agent's comment on the helpdesk ticket: the first public one resolves the escalation
        (and so goes to the user's channel), later ones are follow-ups to that channel. A comment
        seen before (a webhook retried) changes nothing."""
        item = self.by_ticket(c.system, c.ticket, c.external_id)
        if item is None:
            raise NotFoundError(f"no escalation became {c.system} ticket '{c.ticket or c.external_id}'")
        out: dict[str, Any] = {"escalation_id": item.id}
        if not c.public:
            return {**out, "status": "ignored", "reason": "internal note"}
        if not c.text:
            return {**out, "status": "ignored", "reason": "empty comment"}
        ref = c.comment_id or hashlib.sha256(c.text.encode()).hexdigest()[:16]
        actor = f"{c.system}:{c.author or 'agent'}"[:120]
        if item.state in (InboxState.OPEN, InboxState.CLAIMED):
            try:
                self.inbox.resolve(item.id, {"answer": c.text, "ticket": f"{c.system}:{c.ticket}", "comment_id": ref},
                                   actor)
                return {**out, "status": "resolved"}
            except InputError:  # closed meanwhile (the console, a parallel delivery of the hook)
                item = self.inbox.get(item.id) or item
        if item.state == InboxState.DISMISSED:
            return {**out, "status": "ignored", "reason": "escalation dismissed"}
        if (item.resolution or {}).get("comment_id") == ref:
            return {**out, "status": "duplicate"}
        key = f"{TYPE}-reply:{item.id}:{c.system}:{ref}"
        reply_to = item.payload.get("reply_to")
        # one transaction: the follow-up is kept on the item (the widget's poll shows it from there)
        # and queued for the user's channel together, or neither is
        with self.db.transaction():
            if not self.inbox.follow_up(item.id, {"text": c.text, "by": actor}, key):
                return {**out, "status": "duplicate"}
            if reply_to:
                self.outbox.enqueue(reply_to, {"text": c.text, "escalation_id": item.id, "follow_up": True,
                                               "question": item.payload.get("question"),
                                               "answer_id": item.payload.get("answer_id")}, idempotency_key=key)
        self.log_event("escalation.follow_up", {"inbox_id": item.id, "by": actor, "channel": item.payload.get("channel")},
                       item.collection)
        return {**out, "status": "follow_up"}

    def operator_answers(self) -> dict[str, dict[str, Any]]:
        """answer id → the resolved escalation's question and operator answer (for drafts)."""
        out: dict[str, dict[str, Any]] = {}
        for item in self.inbox.list(type=TYPE, state=InboxState.DONE, limit=100_000):
            ans = (item.resolution or {}).get("answer")
            aid = item.payload.get("answer_id")
            if ans and aid:
                out[aid] = {"inbox_id": item.id, "question": item.payload.get("question"), "answer": ans,
                            "by": (item.resolution or {}).get("by"), "collection": item.collection}
        return out
