"""Roles and what each may do. One table, read by the HTTP API, the admin console and the CLI.

* ``admin``  — everything: documents, collections, API keys, the inbox, the event log, metrics.
* ``editor`` — manages documents (upload, re-ingest, delete, list, job status) within its access
  groups, runs structured extraction and text generation, and may ask, search, leave feedback and escalate like a user.
* ``user``   — asks, searches, leaves feedback and calls an operator (the chat widget's key).
* ``bot``    — the same rights as ``user``, for integrations (a Telegram bot, an OpenAI-compatible
  client); kept apart so that keys of machines and of people can be listed and revoked apart.

Every role reads only documents of its key's access groups (plus ``public``): retrieval filters
inside the index query, whatever the role. An administrator sees every document *record* (to
manage them), but search and answers still go through the key's groups.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"
    USER = "user"
    BOT = "bot"


_READERS = frozenset({Role.ADMIN, Role.EDITOR, Role.USER, Role.BOT})
_EDITORS = frozenset({Role.ADMIN, Role.EDITOR})
_ADMINS = frozenset({Role.ADMIN})

#: permission → roles that hold it
PERMISSIONS: dict[str, frozenset[Role]] = {
    "ask": _READERS,
    "search": _READERS,
    "feedback": _READERS,
    "escalate": _READERS,
    "models": _READERS,
    "documents.read": _EDITORS,
    "documents.write": _EDITORS,
    "jobs.read": _EDITORS,
    "collections.read": _EDITORS,
    "extract": _EDITORS,
    "generate": _EDITORS,
    "agents": _EDITORS,
    "keys": _ADMINS,
    "inbox": _ADMINS,
    "events": _ADMINS,
    "metrics": _ADMINS,
    "console": _ADMINS,
}


def can(role: str | Role, permission: str) -> bool:
    try:
        r = Role(role)
    except ValueError:
        return False
    return r in PERMISSIONS.get(permission, frozenset())


def describe() -> dict[str, list[str]]:
    """Role → permissions, for ``spravka keys`` help and the API docs."""
    return {str(r): sorted(p for p, roles in PERMISSIONS.items() if r in roles) for r in Role}
