"""Telegram chats as an outbox target: ``telegram:<chat_id>`` → Bot API ``sendMessage``.

The Bot API has no idempotency key; the dispatcher's lease keeps two processes from sending one
message at once, and a message is marked delivered right after Telegram accepts it. 429 waits for
Telegram's ``retry_after``; 400/403 (chat not found, bot blocked by the user) end the message.
"""

from __future__ import annotations

from typing import Any

import httpx

from spravka.delivery.dispatcher import DeliveryError
from spravka.store.queues import OutboxMessage

API_URL = "https://api.telegram.org"
#: Telegram's limit for one message
MAX_TEXT = 4096


class TelegramSender:
    def __init__(self, token: str, *, api_url: str | None = None, timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = f"{(api_url or API_URL).rstrip('/')}/bot{token}/sendMessage"
        self.client = httpx.Client(timeout=timeout_s, transport=transport)

    def __call__(self, msg: OutboxMessage) -> dict[str, Any]:
        chat_id = msg.target.split(":", 1)[1]
        text = str(msg.payload.get("text") or "")
        if msg.payload.get("escalation_id"):
            text = "Ответ оператора:\n" + text
        body = {"chat_id": int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id, "text": text[:MAX_TEXT]}
        try:
            r = self.client.post(self.url, json=body)
        except httpx.HTTPError as e:
            raise DeliveryError(f"telegram unreachable: {type(e).__name__}") from e
        try:
            data = r.json()
        except ValueError:
            data = {}
        if r.status_code == 429 or r.status_code >= 500:
            retry = (data.get("parameters") or {}).get("retry_after")
            raise DeliveryError(f"telegram answered {r.status_code}", retry_after=float(retry) if retry else None)
        if r.status_code >= 400 or not data.get("ok"):
            raise DeliveryError(f"telegram rejected the message: {r.status_code} {str(data.get('description'))[:200]}",
                                permanent=True)
        return {"status": r.status_code, "message_id": (data.get("result") or {}).get("message_id")}
