"""Persistence of the classifier in the data directory's database (schema v4).

* ``classify_docs``: versioned taxonomies and routing rules (a new version only when the
  content changes), so an old ticket can be explained by the taxonomy it was classified with.
* ``classify_examples``: labelled examples. One label per (taxonomy, text): a correction of a
  text that is already an example replaces its label. ``source`` says where it came from
  (``taxonomy`` seed, ``import``, ``correction``, ``triage``), ``ref`` the ticket or inbox item.
* ``classify_tickets``: what each ticket was classified as, for corrections by ticket id.

Every change of the examples bumps ``classify_rev:<taxonomy>`` in ``meta`` in the same
transaction: another process (the API beside a CLI) sees the change on its next prediction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from spravka.models.embedder import text_hash
from spravka.store.sqlite.db import now


@dataclass(frozen=True)
class Example:
    id: int
    text: str
    label: str
    source: str
    ref: str | None = None
    actor: str | None = None
    created_at: str = ""


@dataclass(frozen=True)
class StoredDoc:
    kind: str
    name: str
    version: int
    hash: str
    body: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class TicketRecord:
    ticket_id: str
    text: str
    metadata: dict[str, Any]
    label: str | None
    confidence: float | None
    method: str | None
    status: str
    triage_id: str | None


class ClassifyStore:
    def __init__(self, db) -> None:
        self.db = db

    # ---- taxonomies and rules ----------------------------------------------------------------
    def put_doc(self, kind: str, name: str, body: dict[str, Any], digest: str) -> StoredDoc:
        """Store a new version unless the latest one has the same ``digest``."""
        with self.db.transaction():
            latest = self.get_doc(kind, name)
            if latest is not None and latest.hash == digest:
                return latest
            version = (latest.version + 1) if latest else 1
            self.db.execute(
                "INSERT INTO classify_docs(kind, name, version, hash, body, created_at) VALUES(?,?,?,?,?,?)"
                " ON CONFLICT DO NOTHING",  # a concurrent writer of the same version (another server) wins
                (kind, name, version, digest, json.dumps(body, ensure_ascii=False), now()),
            )
        return self.get_doc(kind, name)  # type: ignore[return-value]

    def get_doc(self, kind: str, name: str | None = None, version: int | None = None) -> StoredDoc | None:
        """The given version, else the latest of ``name``, else the latest of any name."""
        sql = "SELECT kind, name, version, hash, body, created_at FROM classify_docs WHERE kind=?"
        params: list[Any] = [kind]
        if name is not None:
            sql += " AND name=?"
            params.append(name)
        if version is not None:
            sql += " AND version=?"
            params.append(version)
        rows = self.db.query(sql + " ORDER BY id DESC LIMIT 1", params)
        if not rows:
            return None
        r = rows[0]
        return StoredDoc(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5])

    # ---- examples ----------------------------------------------------------------------------
    def revision(self, taxonomy: str) -> int:
        rows = self.db.query("SELECT value FROM meta WHERE key=?", (f"classify_rev:{taxonomy}",))
        return int(rows[0][0]) if rows else 0

    def _bump(self, taxonomy: str) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES(?, '1') ON CONFLICT(key)"
            " DO UPDATE SET value=CAST(CAST(meta.value AS INTEGER)+1 AS TEXT)",
            (f"classify_rev:{taxonomy}",),
        )

    def add_examples(self, taxonomy: str, items: list[tuple[str, str]], source: str, *, ref: str | None = None,
                     actor: str | None = None, replace: bool = True) -> int:
        """Insert (text, label) pairs; with ``replace`` a known text takes the new label.
        Returns how many rows changed."""
        changed = 0
        with self.db.transaction():
            for text, label in items:
                h = text_hash(text)
                if replace:
                    cur = self.db.execute(
                        "INSERT INTO classify_examples(taxonomy, text, text_hash, label, source, ref, actor, created_at)"
                        " VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(taxonomy, text_hash) DO UPDATE SET label=excluded.label,"
                        " source=excluded.source, ref=excluded.ref, actor=excluded.actor, created_at=excluded.created_at"
                        " WHERE classify_examples.label != excluded.label",
                        (taxonomy, text, h, label, source, ref, actor, now()),
                    )
                else:
                    cur = self.db.execute(
                        "INSERT INTO classify_examples(taxonomy, text, text_hash, label, source, ref, actor,"
                        " created_at) VALUES(?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                        (taxonomy, text, h, label, source, ref, actor, now()),
                    )
                changed += max(0, cur.rowcount)
            if changed:
                self._bump(taxonomy)
        return changed

    def examples(self, taxonomy: str) -> list[Example]:
        rows = self.db.query(
            "SELECT id, text, label, source, ref, actor, created_at FROM classify_examples WHERE taxonomy=? ORDER BY id",
            (taxonomy,),
        )
        return [Example(*r) for r in rows]

    def remove_examples(self, taxonomy: str, *, label: str | None = None, source: str | None = None) -> int:
        sql, params = "DELETE FROM classify_examples WHERE taxonomy=?", [taxonomy]
        if label is not None:
            sql += " AND label=?"
            params.append(label)
        if source is not None:
            sql += " AND source=?"
            params.append(source)
        with self.db.transaction():
            n = self.db.execute(sql, params).rowcount
            if n:
                self._bump(taxonomy)
        return n

    def example_counts(self, taxonomy: str) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for label, source, n in self.db.query(
            "SELECT label, source, count(*) FROM classify_examples WHERE taxonomy=? GROUP BY label, source", (taxonomy,)
        ):
            out.setdefault(label, {})[source] = n
        return out

    def learned_refs(self, taxonomy: str, source: str) -> set[str]:
        return {r[0] for r in self.db.query(
            "SELECT ref FROM classify_examples WHERE taxonomy=? AND source=? AND ref IS NOT NULL", (taxonomy, source))}

    # ---- tickets -----------------------------------------------------------------------------
    def save_ticket(self, taxonomy: str, ticket_id: str, text: str, metadata: dict[str, Any], label: str | None,
                    confidence: float | None, method: str | None, status: str, triage_id: str | None = None) -> None:
        t = now()
        self.db.execute(
            "INSERT INTO classify_tickets(taxonomy, ticket_id, text, metadata, label, confidence, method, status,"
            " triage_id, created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(taxonomy, ticket_id) DO"
            " UPDATE SET text=excluded.text, metadata=excluded.metadata, label=excluded.label,"
            " confidence=excluded.confidence, method=excluded.method, status=excluded.status,"
            " triage_id=COALESCE(excluded.triage_id, classify_tickets.triage_id), updated_at=excluded.updated_at",
            (taxonomy, ticket_id, text, json.dumps(metadata, ensure_ascii=False, default=str), label, confidence,
             method, status, triage_id, t, t),
        )

    def ticket(self, taxonomy: str, ticket_id: str) -> TicketRecord | None:
        rows = self.db.query(
            "SELECT ticket_id, text, metadata, label, confidence, method, status, triage_id FROM classify_tickets"
            " WHERE taxonomy=? AND ticket_id=?", (taxonomy, ticket_id))
        if not rows:
            return None
        r = rows[0]
        return TicketRecord(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6], r[7])
