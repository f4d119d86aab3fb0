"""Outside helpdesks as outbox senders: Jira Service Management and Zendesk.

Both get the escalation's idempotency key in ``Idempotency-Key`` (Zendesk honours it natively for
ticket creation; a gateway or a Jira automation can dedup on it) and Zendesk also as the ticket's
``external_id``. 5xx, 408, 425, 429 and network errors are retried with backoff; another 4xx
(bad credentials, unknown service desk) ends the message as ``dead`` for an administrator.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from spravka.core.errors import ConfigError
from spravka.delivery.dispatcher import post_checked
from spravka.store.queues import OutboxMessage

_MAX_DESCRIPTION = 30_000


def post_json(client: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str], what: str
              ) -> httpx.Response:
    return post_checked(client, url, headers=headers, what=what, json_body=body)


def _auth(email: str | None, token: str | None) -> dict[str, str]:
    if not token:
        return {}
    if email:
        raw = base64.b64encode(f"{email}:{token}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}
    return {"Authorization": f"Bearer {token}"}


def description(t: dict[str, Any]) -> str:
    """The escalation as plain text: question, bot answer, contact, conversation, sources."""
    lines = [f"Вопрос: {t.get('question') or ''}"]
    if t.get("answer"):
        lines.append(f"Ответ бота ({t.get('answer_status')}): {t['answer']}")
    if t.get("contact"):
        lines.append(f"Контакт: {t['contact']}")
    if t.get("comment"):
        lines.append(f"Комментарий: {t['comment']}")
    lines.append(f"Канал: {t.get('channel')} · коллекция: {t.get('collection')} · эскалация {t.get('escalation_id')}")
    if t.get("conversation"):
        lines.append("\nРазговор:")
        lines += [f"{m.get('role')}: {m.get('text')}" for m in t["conversation"]]
    if t.get("chunks"):
        lines.append("\nНайденные фрагменты:")
        lines += [f"- {c.get('title') or c.get('doc_id')} ({c.get('chunk_id')}, {c.get('score')})"
                  for c in t["chunks"]]
    return "\n".join(lines)[:_MAX_DESCRIPTION]


def _summary(t: dict[str, Any]) -> str:
    q = " ".join(str(t.get("question") or "").split())
    return (q[:240] + "…") if len(q) > 240 else q or "Вопрос пользователя"


class JiraSender:
    """``jira:<name>`` → ``POST {base_url}/rest/servicedeskapi/request``."""

    def __init__(self, base_url: str | None, *, service_desk_id: str, request_type_id: str, email: str | None = None,
                 api_token: str | None = None, timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not base_url:
            raise ConfigError("escalate target 'jira' needs escalate.jira.base_url")
        self.url = base_url.rstrip("/") + "/rest/servicedeskapi/request"
        self.service_desk_id, self.request_type_id = service_desk_id, request_type_id
        self.headers = {"Accept": "application/json", **_auth(email, api_token)}
        self.client = httpx.Client(timeout=timeout_s, transport=transport)

    def __call__(self, msg: OutboxMessage) -> dict[str, Any]:
        t = msg.payload
        body = {"serviceDeskId": self.service_desk_id, "requestTypeId": self.request_type_id,
                "requestFieldValues": {"summary": _summary(t), "description": description(t)}}
        r = post_json(self.client, self.url, body, {**self.headers, "Idempotency-Key": msg.idempotency_key}, "jira")
        data = r.json() if r.content else {}
        return {"status": r.status_code, "issueKey": data.get("issueKey"), "issueId": data.get("issueId")}


class ZendeskSender:
    """``zendesk:<name>`` → ``POST {base_url}/api/v2/tickets.json``."""

    def __init__(self, base_url: str | None, *, email: str | None = None, api_token: str | None = None,
                 group_id: int | None = None, timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not base_url:
            raise ConfigError("escalate target 'zendesk' needs escalate.zendesk.base_url")
        self.url = base_url.rstrip("/") + "/api/v2/tickets.json"
        # Zendesk API tokens authenticate as "{email}/token:{token}"
        self.headers = {"Accept": "application/json",
                        **(_auth(f"{email}/token", api_token) if email else _auth(None, api_token))}
        self.group_id = group_id
        self.client = httpx.Client(timeout=timeout_s, transport=transport)

    def __call__(self, msg: OutboxMessage) -> dict[str, Any]:
        t = msg.payload
        ticket: dict[str, Any] = {"subject": _summary(t), "comment": {"body": description(t), "public": False},
                                  "external_id": msg.idempotency_key, "tags": ["spravka", "escalation"]}
        contact = t.get("contact")
        if isinstance(contact, str) and "@" in contact and " " not in contact.strip():
            ticket["requester"] = {"email": contact.strip(), "name": contact.strip().split("@")[0]}
        if self.group_id:
            ticket["group_id"] = self.group_id
        r = post_json(self.client, self.url, {"ticket": ticket},
                      {**self.headers, "Idempotency-Key": msg.idempotency_key}, "zendesk")
        data = r.json() if r.content else {}
        return {"status": r.status_code, "ticket_id": (data.get("ticket") or {}).get("id")}
