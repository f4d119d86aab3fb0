"""Operator replies from the helpdesk: Jira Service Management and Zendesk call Spravka back.

An escalation delivered to Jira or Zendesk becomes a ticket there (the outbox keeps the ticket
key the helpdesk returned). When an agent writes a *public* comment on that ticket, the
helpdesk's webhook posts it to ``POST /v1/escalations/hooks/{jira|zendesk}``; the first one
resolves the escalation (so it reaches the user's channel, the widget's poll and the drafts like
an answer from the admin console), later ones go to the user's channel as follow-ups. Internal
notes never leave the helpdesk. Helpdesks retry webhooks: a comment already taken is a no-op.

The webhook authenticates with ``escalate.hook_secret``: ``Authorization: Bearer <secret>`` (a
Zendesk webhook's bearer-token auth, a Jira automation's header) or ``X-Hub-Signature:
sha256=<HMAC of the body>`` (a Jira Cloud webhook with a secret).

Payloads understood:

* **Jira** (a system webhook or an automation rule sending the issue data): ``webhookEvent``
  ``comment_created``, ``issue.key``, ``comment.id``, ``comment.body`` (wiki text, or ADF JSON from
  API v3), ``comment.author.displayName``, and ``comment.jsdPublic`` (false: an internal note).
* **Zendesk** (a webhook with a JSON body the trigger fills in)::

      {"ticket_id": "{{ticket.id}}", "comment_id": "{{ticket.latest_public_comment.id}}",
       "comment": "{{ticket.latest_public_comment}}", "author": "{{current_user.name}}"}

  ``external_id`` (``{{ticket.external_id}}``, the escalation's idempotency key) is accepted
  in place of ``ticket_id``; ``"public": false`` marks a note.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from spravka.core.errors import InputError

SYSTEMS = ("jira", "zendesk")
_MAX_TEXT = 8000


@dataclass(frozen=True, slots=True)
class HelpdeskComment:
    system: str
    ticket: str
    text: str
    comment_id: str
    author: str
    public: bool = True
    #: Zendesk's ``external_id``: the escalation's idempotency key, when the ticket id is not sent
    external_id: str = ""


def verify(secret: str | None, body: bytes, headers: dict[str, str]) -> bool:
    """Whether the request carries the hook secret (bearer) or its HMAC-SHA256 of the body."""
    if not secret:
        return False
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip().encode(), secret.encode()):
        return True
    sig = headers.get("x-hub-signature", "")
    if sig.startswith("sha256="):
        want = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(sig[7:].strip().lower().encode(), want.encode())
    return False


def adf_text(node: Any) -> str:
    """Plain text of an Atlassian Document Format tree (Jira Cloud API v3 comment bodies)."""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "".join(adf_text(n) for n in node)
    if not isinstance(node, dict):
        return ""
    kind = node.get("type")
    if kind == "text":
        return str(node.get("text") or "")
    if kind == "hardBreak":
        return "\n"
    inner = adf_text(node.get("content") or [])
    return inner + "\n" if kind in ("paragraph", "heading", "listItem", "codeBlock", "blockquote") else inner


def parse(system: str, body: Any) -> HelpdeskComment | None:
    """The comment a webhook carries, or None when the event is not a comment (an issue update,
    a deletion). Raises :class:`InputError` on a body that is not the expected shape."""
    if system not in SYSTEMS:
        raise InputError(f"unknown helpdesk '{system}'", hint="jira or zendesk")
    if not isinstance(body, dict):
        raise InputError("the webhook body must be a JSON object")
    if system == "jira":
        event = str(body.get("webhookEvent") or "comment_created")
        if event != "comment_created":
            return None
        issue, comment = body.get("issue"), body.get("comment")
        if not isinstance(issue, dict) or not isinstance(comment, dict) or not issue.get("key"):
            raise InputError("a Jira comment webhook needs issue.key and comment")
        author = comment.get("author")
        if not isinstance(author, dict):
            author = {}
        return HelpdeskComment(
            "jira", str(issue["key"]), adf_text(comment.get("body")).strip()[:_MAX_TEXT], str(comment.get("id") or ""),
            str(author.get("displayName") or author.get("name") or ""), comment.get("jsdPublic") is not False,
        )
    ticket, external = str(body.get("ticket_id") or "").strip(), str(body.get("external_id") or "").strip()
    if not ticket and not external:
        raise InputError("a Zendesk webhook needs ticket_id (or external_id)")
    return HelpdeskComment(
        "zendesk", ticket, str(body.get("comment") or "").strip()[:_MAX_TEXT], str(body.get("comment_id") or ""),
        str(body.get("author") or ""), body.get("public") is not False, external,
    )
