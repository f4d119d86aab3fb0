"""Inbox and outbox in SQL: the embedded SQLite database, or PostgreSQL through
:class:`~spravka.store.postgres.shared.PgSharedDb` (the same queries; ``db.for_update`` and
``db.skip_locked`` are the row locks PostgreSQL needs and SQLite's ``BEGIN IMMEDIATE`` makes
unnecessary)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from spravka.core.errors import InputError, NotFoundError
from spravka.store.queues import InboxItem, InboxState, OutboxMessage, OutboxState
from spravka.store.sql_documents import dumps
from spravka.store.sqlite.db import now

log = logging.getLogger(__name__)

_INBOX_COLS = "id, type, title, payload, state, assignee, priority, collection, ref, resolution, created_at, updated_at"
_OUTBOX_COLS = ("id, target, payload, idempotency_key, state, attempts, next_attempt_at, last_error, response,"
                " created_at, delivered_at")


class SqlInbox:
    def __init__(self, db: Any) -> None:
        self.db = db
        self._handlers: dict[str, list[Callable[[InboxItem], None]]] = {}

    def on_resolve(self, type: str, handler: Callable[[InboxItem], None]) -> None:
        """Run ``handler`` after an item of ``type`` is resolved (in this process)."""
        self._handlers.setdefault(type, []).append(handler)

    @staticmethod
    def _item(r: tuple) -> InboxItem:
        return InboxItem(id=r[0], type=r[1], title=r[2], payload=json.loads(r[3]), state=InboxState(r[4]),
                         assignee=r[5], priority=r[6], collection=r[7], ref=r[8],
                         resolution=json.loads(r[9]) if r[9] else None, created_at=r[10], updated_at=r[11])

    def add(self, type: str, title: str, payload: dict[str, Any], *, priority: int = 0,
            collection: str | None = None, ref: str | None = None, dedup_key: str | None = None) -> InboxItem:
        item_id = uuid.uuid4().hex[:12]
        t = now()
        with self.db.transaction():
            # ON CONFLICT: a concurrent add of the same key (another server) waits, then finds the first
            self.db.execute(
                "INSERT INTO inbox(id, type, title, payload, state, priority, collection, ref, dedup_key, created_at,"
                " updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (item_id, type, title, dumps(payload), str(InboxState.OPEN), priority, collection, ref, dedup_key, t, t),
            )
            if dedup_key:
                return self._item(self.db.query(f"SELECT {_INBOX_COLS} FROM inbox WHERE dedup_key=?", (dedup_key,))[0])
        return self._must(item_id)

    def get(self, item_id: str, *, lock: bool = False) -> InboxItem | None:
        sql = f"SELECT {_INBOX_COLS} FROM inbox WHERE id=?" + (self.db.for_update if lock else "")
        rows = self.db.query(sql, (item_id,))
        return self._item(rows[0]) if rows else None

    def _must(self, item_id: str, *, lock: bool = False) -> InboxItem:
        item = self.get(item_id, lock=lock)
        if item is None:
            raise NotFoundError(f"inbox item '{item_id}' not found")
        return item

    def list(self, *, type: str | None = None, state: InboxState | None = None, assignee: str | None = None,
             limit: int = 100, updated_since: str | None = None) -> list[InboxItem]:
        sql, params = f"SELECT {_INBOX_COLS} FROM inbox WHERE 1=1", []
        for col, val in (("type", type), ("state", state), ("assignee", assignee)):
            if val is not None:
                sql += f" AND {col}=?"
                params.append(str(val))
        if updated_since is not None:
            sql += " AND updated_at>=?"
            params.append(updated_since)
        sql += " ORDER BY (state IN ('open','claimed')) DESC, priority DESC, created_at DESC LIMIT ?"
        return [self._item(r) for r in self.db.query(sql, [*params, limit])]

    def claim(self, item_id: str, assignee: str) -> InboxItem:
        with self.db.transaction():
            item = self._must(item_id, lock=True)
            if item.state in (InboxState.DONE, InboxState.DISMISSED):
                raise InputError(f"inbox item '{item_id}' is already {item.state}")
            if item.state == InboxState.CLAIMED and item.assignee not in (None, assignee):
                raise InputError(f"inbox item '{item_id}' is taken by {item.assignee}")
            self.db.execute("UPDATE inbox SET state=?, assignee=?, updated_at=? WHERE id=?",
                            (str(InboxState.CLAIMED), assignee, now(), item_id))
        return self._must(item_id)

    def _close(self, item_id: str, state: InboxState, resolution: dict[str, Any], actor: str) -> InboxItem:
        with self.db.transaction():
            item = self._must(item_id, lock=True)
            if item.state in (InboxState.DONE, InboxState.DISMISSED):
                raise InputError(f"inbox item '{item_id}' is already {item.state}")
            self.db.execute(
                "UPDATE inbox SET state=?, assignee=COALESCE(assignee, ?), resolution=?, updated_at=? WHERE id=?",
                (str(state), actor, dumps({**resolution, "by": actor}), now(), item_id),
            )
        return self._must(item_id)

    def resolve(self, item_id: str, resolution: dict[str, Any], actor: str) -> InboxItem:
        item = self._close(item_id, InboxState.DONE, resolution, actor)
        for handler in self._handlers.get(item.type, ()):
            try:
                handler(item)
            except Exception:  # noqa: BLE001 - the decision is recorded; a handler can be re-run
                log.exception("inbox handler for %s failed on %s", item.type, item.id)
        return item

    def dismiss(self, item_id: str, reason: str, actor: str) -> InboxItem:
        return self._close(item_id, InboxState.DISMISSED, {"dismissed": reason}, actor)

    def follow_up(self, item_id: str, entry: dict[str, Any], key: str) -> bool:
        with self.db.transaction():
            item = self._must(item_id, lock=True)
            if item.state != InboxState.DONE:
                raise InputError(f"inbox item '{item_id}' is {item.state}, not done: resolve it first")
            res = dict(item.resolution or {})
            ups = list(res.get("follow_ups") or [])
            if any(u.get("key") == key for u in ups):
                return False
            res["follow_ups"] = [*ups, {**entry, "key": key, "at": now()}]
            self.db.execute("UPDATE inbox SET resolution=?, updated_at=? WHERE id=?", (dumps(res), now(), item_id))
        return True

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for type_, state, n in self.db.query("SELECT type, state, count(*) FROM inbox GROUP BY type, state"):
            out.setdefault(type_, {})[state] = n
        return out


class SqlOutbox:
    def __init__(self, db: Any) -> None:
        self.db = db

    @staticmethod
    def _msg(r: tuple) -> OutboxMessage:
        return OutboxMessage(id=r[0], target=r[1], payload=json.loads(r[2]), idempotency_key=r[3],
                             state=OutboxState(r[4]), attempts=r[5], next_attempt_at=r[6], last_error=r[7],
                             response=json.loads(r[8]) if r[8] else None, created_at=r[9], delivered_at=r[10])

    def enqueue(self, target: str, payload: dict[str, Any], idempotency_key: str) -> OutboxMessage:
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO outbox(id, target, payload, idempotency_key, state, next_attempt_at, created_at)"
                " VALUES(?,?,?,?,?,?,?) ON CONFLICT (idempotency_key) DO NOTHING",
                (uuid.uuid4().hex[:12], target, dumps(payload), idempotency_key, str(OutboxState.PENDING), 0.0, now()),
            )
            rows = self.db.query(f"SELECT {_OUTBOX_COLS} FROM outbox WHERE idempotency_key=?", (idempotency_key,))
        return self._msg(rows[0])

    def get(self, message_id: str) -> OutboxMessage | None:
        rows = self.db.query(f"SELECT {_OUTBOX_COLS} FROM outbox WHERE id=?", (message_id,))
        return self._msg(rows[0]) if rows else None

    def due(self, now_ts: float, limit: int = 50, *, schemes: list[str] | None = None,
            lease_s: float = 0.0) -> list[OutboxMessage]:
        """Pending messages whose time has come (of these target ``schemes`` only). With
        ``lease_s`` they are leased in the same transaction: hidden from every other dispatcher
        (another process too) until then, so two processes never send the same message at once,
        and one killed mid-send leaves it to be sent again after the lease."""
        sql = f"SELECT {_OUTBOX_COLS} FROM outbox WHERE state='pending' AND next_attempt_at<=?"
        params: list[Any] = [now_ts]
        if schemes is not None:
            if not schemes:
                return []
            sql += f" AND ({' OR '.join('target LIKE ?' for _ in schemes)})"
            params += [f"{s}:%" for s in schemes]
        sql += " ORDER BY next_attempt_at LIMIT ?"
        params.append(limit)
        if lease_s > 0:
            sql += self.db.skip_locked
        with self.db.transaction():
            rows = self.db.query(sql, params)
            if lease_s > 0 and rows:
                ids = [r[0] for r in rows]
                self.db.execute(f"UPDATE outbox SET next_attempt_at=? WHERE id IN ({','.join('?' * len(ids))})",
                                [now_ts + lease_s, *ids])
        return [self._msg(r) for r in rows]

    def mark_delivered(self, message_id: str, response: dict[str, Any] | None = None) -> None:
        self.db.execute(
            "UPDATE outbox SET state=?, attempts=attempts+1, response=?, last_error=NULL, delivered_at=? WHERE id=?",
            (str(OutboxState.DELIVERED), dumps(response) if response is not None else None, now(), message_id),
        )

    def mark_failed(self, message_id: str, error: str, retry_at: float | None) -> None:
        if retry_at is None:
            self.db.execute("UPDATE outbox SET state=?, attempts=attempts+1, last_error=? WHERE id=?",
                            (str(OutboxState.DEAD), error[:2000], message_id))
        else:
            self.db.execute("UPDATE outbox SET attempts=attempts+1, last_error=?, next_attempt_at=? WHERE id=?",
                            (error[:2000], retry_at, message_id))

    def list(self, *, state: OutboxState | None = None, limit: int = 100) -> list[OutboxMessage]:
        sql, params = f"SELECT {_OUTBOX_COLS} FROM outbox", []
        if state is not None:
            sql += " WHERE state=?"
            params.append(str(state))
        return [self._msg(r) for r in self.db.query(sql + " ORDER BY created_at DESC, rowid DESC LIMIT ?", [*params, limit])]

    def retry(self, message_id: str) -> None:
        self.db.execute("UPDATE outbox SET state='pending', next_attempt_at=0 WHERE id=?", (message_id,))
