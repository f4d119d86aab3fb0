"""The shared tables (inbox, outbox, API keys, classifier data, answer cache, Telegram bindings)
on PostgreSQL, through the same small database API the embedded SQLite
:class:`~spravka.store.sqlite.db.Database` offers: ``query``, ``execute`` (whose result has a
``rowcount``), ``transaction()`` and a few dialect hooks. The modules that own those tables write
their SQL once, with ``?`` placeholders, and run on either.

Dialect hooks (the embedded database has the same attributes):

* ``for_update``: appended to a ``SELECT`` that reads a row the transaction will change. SQLite's
  ``BEGIN IMMEDIATE`` already serialises writers; PostgreSQL's row lock does the same per row, so
  two operators on two servers cannot both claim one item;
* ``skip_locked``: for the outbox lease, so two dispatchers take disjoint messages instead of
  queueing behind each other's lock;
* ``json_text(column)``: SQL for the text of one top-level key (a ``?`` parameter) of a JSON
  text column.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spravka.store.postgres.db import PgDatabase


@dataclass(frozen=True, slots=True)
class Result:
    rowcount: int


def to_pg(sql: str, params: Any) -> tuple[str, Any]:
    """``?`` placeholders → ``%s`` (a literal ``%`` doubled); no parameters, no rewriting."""
    if not params:
        return sql, None
    return sql.replace("%", "%%").replace("?", "%s"), params


class PgSharedDb:
    dialect = "postgres"
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, db: PgDatabase) -> None:
        self.pg = db

    @staticmethod
    def json_text(column: str) -> str:
        return f"({column}::jsonb ->> ?)"

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.pg.transaction() as conn:
            yield conn

    def query(self, sql: str, params: Any = ()) -> list[tuple]:
        return self.pg.query(*to_pg(sql, params))

    def execute(self, sql: str, params: Any = ()) -> Result:
        return Result(self.pg.execute(*to_pg(sql, params)))

    def close(self) -> None:  # the pool belongs to the document store's PgDatabase
        pass


# ---- moving an older side SQLite file in -----------------------------------------------------------
#: shared table → its conflict key in PostgreSQL (a row already there is kept: re-running is safe).
#: ``classify_docs`` and ``classify_examples`` get new serial ids, in the old order.
_IMPORT: dict[str, tuple[str, ...]] = {
    "inbox": ("id",), "outbox": ("id",), "api_keys": ("id",), "classify_docs": ("kind", "name", "version"),
    "classify_examples": ("taxonomy", "text_hash"), "classify_tickets": ("taxonomy", "ticket_id"),
    "answer_cache": ("key",), "telegram_bindings": ("chat_id",),
}
_NEW_IDS = {"classify_docs", "classify_examples"}


def import_side_sqlite(path: Path, db: PgSharedDb) -> dict[str, int] | None:
    """Copy the shared tables of a SQLite data directory database into PostgreSQL, once.

    Before schema revision 0002 a PostgreSQL deployment kept its inbox, outbox, API keys,
    classifier data, answer cache and Telegram bindings in ``spravka.db`` in the data directory
    (and an embedded deployment moved to PostgreSQL has them there too). They are copied in one
    PostgreSQL transaction, which also records the file's instance id in ``meta``: the next start
    (of any server) skips it, and a crash half-way leaves nothing to clean up. A row whose key is
    in PostgreSQL already is kept. The file itself is left alone (switching ``store.url`` back
    still finds it). Returns the rows copied per table, or None when this file was imported before.
    """
    import sqlite3

    from spravka.store.sqlite.db import Database

    side = Database(path)
    try:
        marker = f"imported_sqlite:{side.instance_id}"
        if db.query("SELECT 1 FROM meta WHERE key=?", (marker,)):
            return None
        src: sqlite3.Connection = side.conn
        have = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        copied: dict[str, int] = {}
        with db.transaction():
            for table, key in _IMPORT.items():
                if table not in have:
                    continue
                cols = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
                if table in _NEW_IDS:
                    cols = [c for c in cols if c != "id"]
                order = "id" if table in _NEW_IDS else "rowid"
                n = 0
                for row in src.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}").fetchall():
                    n += db.execute(f"INSERT INTO {table}({', '.join(cols)}) VALUES({','.join('?' * len(cols))})"
                                    f" ON CONFLICT ({', '.join(key)}) DO NOTHING", row).rowcount
                copied[table] = n
            for k, v in src.execute("SELECT key, value FROM meta WHERE key LIKE 'classify_rev:%'").fetchall():
                db.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT (key) DO NOTHING", (k, v))
            db.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT (key) DO NOTHING", (marker, str(path)))
        return copied
    finally:
        side.close()
