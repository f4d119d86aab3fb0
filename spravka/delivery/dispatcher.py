"""The outbox dispatcher: sends due messages, retries with exponential backoff, never loses one.

A message's ``target`` is ``scheme:address`` (``webhook:https://…``, ``jira:SD``,
``telegram:12345``). Capabilities register one sender per scheme. A sender returns the remote
side's response (kept for audit) or raises :class:`DeliveryError`; a permanent error (the other
side rejected the message itself) ends the message as ``dead`` at once, anything else is retried
until ``max_attempts``. Messages carry their idempotency key to the receiver so a crash between
"sent" and "marked delivered" cannot create a second ticket on a receiver that honours it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spravka.store.queues import Outbox, OutboxMessage

log = logging.getLogger(__name__)

Sender = Callable[[OutboxMessage], dict[str, Any] | None]


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


def post_checked(client: Any, url: str, *, headers: dict[str, str], what: str,
                 json_body: Any = None, content: bytes | None = None) -> Any:
    """POST and sort the outcome the way every HTTP target needs it: network errors, 5xx, 408,
    425 and 429 are worth a retry (honouring ``Retry-After``); another 4xx means the other side
    rejected the message itself, so retrying cannot help."""
    import httpx

    try:
        r = client.post(url, json=json_body, content=content, headers=headers)
    except httpx.HTTPError as e:
        raise DeliveryError(f"{what} unreachable: {type(e).__name__}") from e
    if r.status_code in (408, 425, 429) or r.status_code >= 500:
        ra = r.headers.get("Retry-After")
        raise DeliveryError(f"{what} answered {r.status_code}",
                            retry_after=float(ra) if ra and ra.isdigit() else None)
    if r.status_code >= 400:
        raise DeliveryError(f"{what} rejected the request: {r.status_code} {r.text[:300]}", permanent=True)
    return r


@dataclass
class DispatchReport:
    delivered: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)


class OutboxDispatcher:
    def __init__(
        self,
        outbox: Outbox,
        *,
        max_attempts: int = 12,
        base_delay_s: float = 2.0,
        max_delay_s: float = 900.0,
        clock: Callable[[], float] = time.time,
        only_registered: bool = False,
        lease_s: float = 0.0,
    ) -> None:
        """``only_registered``: take only messages whose scheme has a sender here, so several
        processes with different senders (``spravka serve`` and a bot) share one outbox.
        ``lease_s``: hide a message from other processes while it is being sent."""
        self.outbox = outbox
        self.only_registered = only_registered
        self.lease_s = lease_s
        self.senders: dict[str, Sender] = {}
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def register(self, scheme: str, sender: Sender) -> None:
        self.senders[scheme] = sender

    def backoff(self, attempts: int) -> float:
        """Exponential with full jitter, capped."""
        return random.uniform(0.5, 1.0) * min(self.max_delay_s, self.base_delay_s * 2 ** max(0, attempts - 1))

    def run_once(self, limit: int = 50) -> DispatchReport:
        report = DispatchReport()
        with self._lock:  # one delivery round at a time per process
            schemes = sorted(self.senders) if self.only_registered else None
            for msg in self.outbox.due(self.clock(), limit, schemes=schemes, lease_s=self.lease_s):
                scheme = msg.target.split(":", 1)[0]
                sender = self.senders.get(scheme)
                try:
                    if sender is None:
                        raise DeliveryError(f"no sender registered for '{scheme}'")
                    response = sender(msg)
                except DeliveryError as e:
                    self._failed(msg, str(e), e.permanent, e.retry_after, report)
                except Exception as e:  # noqa: BLE001 - a sender bug must not kill the loop
                    self._failed(msg, f"{type(e).__name__}: {e}", False, None, report)
                else:
                    self.outbox.mark_delivered(msg.id, response)
                    report.delivered.append(msg.id)
        return report

    def _failed(self, msg: OutboxMessage, error: str, permanent: bool, retry_after: float | None,
                report: DispatchReport) -> None:
        attempts = msg.attempts + 1
        if permanent or attempts >= self.max_attempts:
            self.outbox.mark_failed(msg.id, error, None)
            report.dead.append(msg.id)
            log.warning("outbox %s to %s gave up after %d attempts: %s", msg.id, msg.target.split(":", 1)[0],
                        attempts, error)
            return
        delay = max(retry_after or 0.0, self.backoff(attempts))
        self.outbox.mark_failed(msg.id, error, self.clock() + delay)
        report.retried.append(msg.id)

    # ---- background loop (the service runs one) --------------------------------------------------
    def start(self, interval_s: float = 1.0) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except Exception:  # noqa: BLE001 - e.g. the database is locked for a moment
                    log.exception("outbox round failed")
                self._stop.wait(interval_s)

        self._thread = threading.Thread(target=loop, name="spravka-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
