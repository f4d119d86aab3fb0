"""Generic webhook target: ``webhook:https://host/path``.

POSTs the payload as JSON with ``Idempotency-Key`` and, when a secret is set, an HMAC-SHA256
signature of the body in ``X-Spravka-Signature`` so the receiver can trust it came from us.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from spravka.delivery.dispatcher import post_checked
from spravka.store.queues import OutboxMessage


class WebhookSender:
    def __init__(self, *, secret: str | None = None, timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.secret = secret
        self.client = httpx.Client(timeout=timeout_s, transport=transport)

    def __call__(self, msg: OutboxMessage) -> dict[str, Any] | None:
        url = msg.target.split(":", 1)[1]
        body = json.dumps(msg.payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": msg.idempotency_key}
        if self.secret:
            headers["X-Spravka-Signature"] = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        r = post_checked(self.client, url, headers=headers, what="webhook", content=body)
        try:
            return {"status": r.status_code, "body": r.json()}
        except ValueError:
            return {"status": r.status_code}
