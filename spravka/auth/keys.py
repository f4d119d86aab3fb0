"""API keys: random secrets stored only as salted hashes, each with a role and access groups.

A key reads ``spk_<id>_<secret>``: ``id`` finds the row, the 192-bit ``secret`` is checked
against ``sha256(salt || secret)`` with a per-key salt. The secrets are random, not chosen by
people, so a slow password hash (scrypt) would add latency to every request and no security;
the salt keeps two keys' hashes unrelated. The full key is returned once, at creation, and never
stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from spravka.auth.roles import Role
from spravka.core.errors import InputError, NotFoundError
from spravka.core.types import PUBLIC_GROUP

PREFIX = "spk"
_KEY = re.compile(r"^spk_([0-9a-f]{10})_([0-9a-f]{48})$")
_GROUP = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
_NAME = re.compile(r"^[\w.@\- ]{1,64}$")
#: last_used_at is written at most this often per key (a write per request would serialise reads)
_TOUCH_EVERY_S = 60.0

_COLS = "id, name, role, groups, salt, hash, rate_per_minute, created_at, revoked_at, last_used_at"


@dataclass(slots=True)
class ApiKey:
    """A key as the platform knows it: never the secret."""

    id: str
    name: str
    role: Role
    groups: tuple[str, ...]
    rate_per_minute: float | None = None
    created_at: str = ""
    revoked_at: str | None = None
    last_used_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": str(self.role), "groups": list(self.groups),
                "rate_per_minute": self.rate_per_minute, "created_at": self.created_at,
                "revoked_at": self.revoked_at, "last_used_at": self.last_used_at}


def parse_groups(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """``"hr, it"`` or ``["hr", "it"]`` → ``("hr", "it")``; validated, lower-case, sorted."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    out = set()
    for item in items:
        g = item.strip().lower()
        if not g:
            continue
        if not _GROUP.match(g):
            raise InputError(f"invalid access group '{item.strip()[:64]}'",
                             hint="letters, digits, '_', '-', '.', up to 64 characters")
        out.add(g)
    return tuple(sorted(out))


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class KeyStore:
    """Keys in the ``api_keys`` table of the data directory's database (schema v3)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def _row(self, r: tuple) -> ApiKey:
        return ApiKey(id=r[0], name=r[1], role=Role(r[2]), groups=tuple(json.loads(r[3])),
                      rate_per_minute=r[6], created_at=r[7], revoked_at=r[8], last_used_at=r[9])

    def create(self, name: str, role: str | Role, groups: str | list[str] | tuple[str, ...] | None = None,
               *, rate_per_minute: float | None = None) -> tuple[str, ApiKey]:
        """A new key. Returns ``(the full key, shown once; its record)``."""
        name = (name or "").strip()
        if not _NAME.match(name):
            raise InputError("a key needs a name: letters, digits, spaces, '.', '@', '-', up to 64 characters")
        try:
            role = Role(role)
        except ValueError:
            raise InputError(f"unknown role '{role}'", hint="admin, editor, user or bot") from None
        grp = parse_groups(groups)
        if rate_per_minute is not None and not (0 < rate_per_minute <= 1_000_000):
            raise InputError("rate_per_minute must be between 0 and 1000000")
        if any(k.name == name for k in self.list()):
            raise InputError(f"an active key named '{name}' exists", hint="revoke it first or choose another name")
        key_id = secrets.token_hex(5)
        secret = secrets.token_hex(24)
        salt = secrets.token_hex(16)
        t = _now()
        with self.db.transaction():
            self.db.execute(
                f"INSERT INTO api_keys({_COLS}) VALUES(?,?,?,?,?,?,?,?,?,?)",
                (key_id, name, str(role), json.dumps(list(grp)), salt, _hash(salt, secret), rate_per_minute, t,
                 None, None),
            )
        return f"{PREFIX}_{key_id}_{secret}", ApiKey(key_id, name, role, grp, rate_per_minute, t)

    def verify(self, key: str) -> ApiKey | None:
        """The active key behind ``key``, or None (unknown, forged, malformed or revoked)."""
        m = _KEY.match((key or "").strip())
        if not m:
            return None
        key_id, secret = m.groups()
        rows = self.db.query(f"SELECT {_COLS} FROM api_keys WHERE id=?", (key_id,))
        if not rows:
            return None
        r = rows[0]
        if not hmac.compare_digest(_hash(r[4], secret), r[5]) or r[8] is not None:
            return None
        k = self._row(r)
        self._touch(k.id)
        return k

    def _touch(self, key_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(key_id, -1e9) < _TOUCH_EVERY_S:
                return
            self._touched[key_id] = now
        self.db.execute("UPDATE api_keys SET last_used_at=? WHERE id=?", (_now(), key_id))

    def get(self, key_id: str) -> ApiKey | None:
        rows = self.db.query(f"SELECT {_COLS} FROM api_keys WHERE id=?", (key_id,))
        return self._row(rows[0]) if rows else None

    def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        sql = f"SELECT {_COLS} FROM api_keys"
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        return [self._row(r) for r in self.db.query(sql + " ORDER BY created_at, id")]

    def find(self, id_or_name: str) -> ApiKey:
        """An active key by id or by name (revoked ones by id only)."""
        k = self.get(id_or_name)
        if k is not None:
            return k
        named = [k for k in self.list() if k.name == id_or_name]
        if not named:
            raise NotFoundError(f"no API key '{id_or_name}'", hint="spravka keys list")
        return named[0]

    def revoke(self, id_or_name: str) -> ApiKey:
        k = self.find(id_or_name)
        if k.revoked_at is None:
            self.db.execute("UPDATE api_keys SET revoked_at=? WHERE id=?", (_now(), k.id))
        return self.get(k.id)  # type: ignore[return-value]

    def count_admins(self) -> int:
        return sum(1 for k in self.list() if k.role == Role.ADMIN)


def key_id_of(key: str) -> str | None:
    """The public id inside a key (for logs and rate limits), without checking it."""
    m = _KEY.match((key or "").strip())
    return m.group(1) if m else None


__all__ = ["PUBLIC_GROUP", "ApiKey", "KeyStore", "Role", "key_id_of", "parse_groups"]
