"""The two shared queues every capability uses (one table each, one API each).

* **Inbox**: human tasks. An escalated question, a ticket to triage, an extraction to review, an
  agent action awaiting approval: all are items with a ``type``, a ``payload``, a ``state``
  (open → claimed → done | dismissed), an ``assignee`` and a ``resolution``. Capabilities
  register a handler per type that runs when an item is resolved (a triage correction becomes a
  labelled example; an operator's answer goes back to the user through the outbox).
* **Outbox**: deliveries to outside systems (a helpdesk ticket, a webhook, a Telegram reply). A
  message is persisted first, in the caller's transaction, with an idempotency key; a
  dispatcher (:mod:`spravka.delivery`) sends it with retries and backoff. A target that is down
  delays delivery but loses nothing, across restarts too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class InboxState(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    DONE = "done"
    DISMISSED = "dismissed"


@dataclass(slots=True)
class InboxItem:
    id: str
    type: str
    title: str
    payload: dict[str, Any]
    state: InboxState
    assignee: str | None = None
    priority: int = 0
    collection: str | None = None
    ref: str | None = None
    resolution: dict[str, Any] | None = None
    created_at: str = ""
    updated_at: str = ""


class OutboxState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    #: gave up after the maximum number of attempts; visible to an administrator, can be retried
    DEAD = "dead"


@dataclass(slots=True)
class OutboxMessage:
    id: str
    target: str
    payload: dict[str, Any]
    idempotency_key: str
    state: OutboxState
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str | None = None
    response: dict[str, Any] | None = None
    created_at: str = ""
    delivered_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Inbox(Protocol):
    def add(self, type: str, title: str, payload: dict[str, Any], *, priority: int = 0,
            collection: str | None = None, ref: str | None = None, dedup_key: str | None = None) -> InboxItem:
        """Create an item; with ``dedup_key`` a second add returns the first item (idempotent)."""

    def get(self, item_id: str) -> InboxItem | None: ...

    def list(self, *, type: str | None = None, state: InboxState | None = None, assignee: str | None = None,
             limit: int = 100, updated_since: str | None = None) -> list[InboxItem]:
        """Open and claimed first, then by priority, newest first; ``updated_since`` (an ISO time)
        keeps the items changed at or after it."""

    def claim(self, item_id: str, assignee: str) -> InboxItem: ...

    def resolve(self, item_id: str, resolution: dict[str, Any], actor: str) -> InboxItem:
        """Close the item as done and run the handlers registered for its type."""

    def on_resolve(self, type: str, handler: Callable[[InboxItem], None]) -> None: ...

    def dismiss(self, item_id: str, reason: str, actor: str) -> InboxItem: ...

    def follow_up(self, item_id: str, entry: dict[str, Any], key: str) -> bool:
        """Append ``entry`` to a done item's ``resolution["follow_ups"]`` once per ``key``; False when
        that key is there already."""

    def counts(self) -> dict[str, dict[str, int]]: ...


class Outbox(Protocol):
    def enqueue(self, target: str, payload: dict[str, Any], idempotency_key: str) -> OutboxMessage:
        """Persist a delivery; the same key twice returns the existing message."""

    def due(self, now: float, limit: int = 50, *, schemes: list[str] | None = None,
            lease_s: float = 0.0) -> list[OutboxMessage]:
        """Due messages (of ``schemes`` only), leased for ``lease_s`` against other dispatchers."""

    def mark_delivered(self, message_id: str, response: dict[str, Any] | None = None) -> None: ...

    def mark_failed(self, message_id: str, error: str, retry_at: float | None) -> None:
        """``retry_at`` None gives up (state dead)."""

    def get(self, message_id: str) -> OutboxMessage | None: ...

    def list(self, *, state: OutboxState | None = None, limit: int = 100) -> list[OutboxMessage]:
        """Newest first (ties in the same second: the later enqueued first)."""

    def retry(self, message_id: str) -> None:
        """Put a dead message back in the queue (an administrator's action)."""
