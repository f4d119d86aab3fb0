"""SQLite connection, schema migrations and transactions for the embedded data directory.

WAL mode lets readers (the API, a second CLI) work while an ingestion writes. Every change of a
collection's chunks bumps its ``generation`` in the same transaction, which is how vector
snapshots (kept beside the database) know they are stale.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cached_property
from pathlib import Path

from spravka.core.errors import SchemaVersionError, StoreError
from spravka.core.filters import compare

SCHEMA_VERSION = 2

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE collections(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT UNIQUE NOT NULL,
    created_at TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    settings TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE sources(
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    file_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    doc_ids TEXT NOT NULL DEFAULT '[]',
    error TEXT, reason TEXT,
    fingerprint TEXT NOT NULL DEFAULT '',
    root TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY(collection_id, path)
);
CREATE TABLE documents(
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    doc_id TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    format TEXT NOT NULL DEFAULT '',
    content_hash TEXT NOT NULL DEFAULT '',
    dedup_hash TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    groups TEXT NOT NULL DEFAULT '["public"]',
    n_chunks INTEGER NOT NULL DEFAULT 0,
    error TEXT, reason TEXT, duplicate_of TEXT,
    text TEXT, sections TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY(collection_id, doc_id)
);
CREATE INDEX documents_dedup ON documents(collection_id, dedup_hash);
CREATE INDEX documents_dup_of ON documents(collection_id, duplicate_of);
CREATE TABLE embeddings(
    model TEXT NOT NULL, hash TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY(model, hash)
) WITHOUT ROWID;
CREATE TABLE chunks(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    doc_id TEXT NOT NULL,
    ord INTEGER NOT NULL,
    text TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    heading TEXT NOT NULL DEFAULT '',
    page INTEGER,
    start INTEGER NOT NULL DEFAULT 0,
    "end" INTEGER NOT NULL DEFAULT 0,
    tokens INTEGER NOT NULL DEFAULT 0,
    vector BLOB NOT NULL,
    title_hash TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    groups TEXT NOT NULL DEFAULT '["public"]'
);
CREATE INDEX chunks_doc ON chunks(collection_id, doc_id, ord);
CREATE TABLE titles(
    collection_id INTEGER NOT NULL, hash TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY(collection_id, hash)
) WITHOUT ROWID;
CREATE TABLE tombstones(collection_id INTEGER NOT NULL, chunk_id INTEGER NOT NULL, generation INTEGER NOT NULL);
CREATE INDEX tombstones_gen ON tombstones(collection_id, generation);
CREATE TABLE events(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL, kind TEXT NOT NULL, collection TEXT, payload TEXT NOT NULL
);
CREATE INDEX events_kind ON events(kind, id);
CREATE TABLE jobs(
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, params TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL, progress INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0,
    message TEXT, error TEXT, result TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
"""

# v2: the shared human-task inbox and the delivery outbox (see spravka/store/queues.py).
_SCHEMA_V2 = """
CREATE TABLE inbox(
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    assignee TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    collection TEXT,
    ref TEXT,
    dedup_key TEXT UNIQUE,
    resolution TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX inbox_state ON inbox(state, type, priority DESC, created_at);
CREATE TABLE outbox(
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    response TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at)
"""

#: migrations[n] upgrades a database from version n-1 to n
MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _SCHEMA_V2}


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Database:
    """One connection shared by the store and the index, guarded by a re-entrant lock."""

    # Dialect hooks of the shared tables (see spravka/store/postgres/shared.py, which has the same):
    # BEGIN IMMEDIATE already serialises writers, so no row locks are needed here.
    dialect = "sqlite"
    for_update = ""
    skip_locked = ""

    @staticmethod
    def json_text(column: str) -> str:
        """SQL for the text of one top-level key (a ``?`` parameter) of a JSON text column."""
        return f"CAST(json_extract({column}, '$.' || ?) AS TEXT)"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the data directory database {path}: {e}") from e
        self.lock = threading.RLock()
        self._depth = 0
        c = self.conn
        try:
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute("PRAGMA foreign_keys=ON")
            c.execute("PRAGMA busy_timeout=30000")
        except sqlite3.DatabaseError as e:
            c.close()
            raise StoreError(f"{path} is not a Spravka database or is corrupt: {e}",
                             hint="move it away or point --data-dir elsewhere") from e
        c.create_function("spv_cmp", 3, lambda a, op, b: int(a is not None and compare(str(a), op, str(b))),
                          deterministic=True)
        self._migrate()

    def _migrate(self) -> None:
        with self.lock:
            try:
                has_meta = self.conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
                ).fetchone()
                version = 0
                if has_meta:
                    row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                    version = int(row[0]) if row else 0
            except sqlite3.DatabaseError as e:
                raise StoreError(f"{self.path} is not a Spravka database or is corrupt: {e}") from e
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the data directory was written by a newer Spravka (schema {version}, this one knows {SCHEMA_VERSION})",
                    hint="upgrade Spravka or point --data-dir elsewhere",
                )
            for v in range(version + 1, SCHEMA_VERSION + 1):
                with self.transaction():
                    for stmt in _statements(MIGRATIONS[v]):
                        self.conn.execute(stmt)
                    self.conn.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', ?)", (str(v),)
                    )

    @cached_property
    def instance_id(self) -> str:
        """A random id this database file keeps for life: files derived from it (vector snapshots,
        the saved BM25 index) record it, so they are never loaded against another database that
        happens to sit in the same data directory (a deleted and re-created ``spravka.db``)."""
        with self.transaction():
            self.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES('instance_id', ?)", (uuid.uuid4().hex,))
            return str(self.conn.execute("SELECT value FROM meta WHERE key='instance_id'").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Re-entrant: only the outermost block begins and commits."""
        with self.lock:
            outer = self._depth == 0
            if outer:
                self.conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                self._depth -= 1
                if outer:
                    self.conn.execute("ROLLBACK")
                raise
            else:
                self._depth -= 1
                if outer:
                    self.conn.execute("COMMIT")

    def execute(self, sql: str, params: tuple | list = ()) -> sqlite3.Cursor:
        with self.lock:
            return self.conn.execute(sql, params)

    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self.lock, suppress(sqlite3.Error):
            self.conn.close()


def _statements(script: str) -> list[str]:
    """Split a schema script into statements (no semicolons inside our DDL)."""
    return [s.strip() for s in script.split(";") if s.strip()]


# v3: API keys for the HTTP API and the web console (spravka/auth/keys.py). Only a salted hash of
# each secret is stored; ``groups`` is the JSON list of access groups the key may read.
_SCHEMA_V3 = """
CREATE TABLE api_keys(
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    groups TEXT NOT NULL DEFAULT '[]',
    salt TEXT NOT NULL,
    hash TEXT NOT NULL,
    rate_per_minute REAL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    last_used_at TEXT
);
CREATE INDEX api_keys_active ON api_keys(revoked_at, name)
"""
MIGRATIONS[3] = _SCHEMA_V3
SCHEMA_VERSION = 3


# v4: ticket classification (spravka/classify/store.py). Versioned taxonomies and routing rules,
# labelled examples (seeds, imports and human corrections; one label per text, the latest wins)
# and the classified tickets (so a correction can name a ticket id).
_SCHEMA_V4 = """
CREATE TABLE classify_docs(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    hash TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE(kind, name, version)
);
CREATE TABLE classify_examples(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    taxonomy TEXT NOT NULL,
    text TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    label TEXT NOT NULL,
    source TEXT NOT NULL,
    ref TEXT,
    actor TEXT,
    created_at TEXT NOT NULL,
    UNIQUE(taxonomy, text_hash)
);
CREATE INDEX classify_examples_ref ON classify_examples(taxonomy, ref);
CREATE TABLE classify_tickets(
    taxonomy TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    label TEXT,
    confidence REAL,
    method TEXT,
    status TEXT NOT NULL,
    triage_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY(taxonomy, ticket_id)
)
"""
MIGRATIONS[4] = _SCHEMA_V4
SCHEMA_VERSION = 4


# v5: operations. The answer cache (spravka/cache/sql.py; ``entry`` is JSON and records the
# documents and content hashes the answer was built from, checked on every read), and the
# Telegram chats bound to an API key by ``/login`` (spravka/bots/telegram.py; the key itself is
# never stored, only its id).
_SCHEMA_V5 = """
CREATE TABLE answer_cache(
    key TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    collection TEXT NOT NULL,
    question TEXT NOT NULL,
    vector BLOB,
    entry TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL DEFAULT 0,
    hits INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX answer_cache_scope ON answer_cache(scope, created_at);
CREATE TABLE telegram_bindings(
    chat_id INTEGER PRIMARY KEY,
    key_id TEXT NOT NULL,
    user_id INTEGER,
    created_at TEXT NOT NULL
);
CREATE INDEX events_ts ON events(ts)
"""
MIGRATIONS[5] = _SCHEMA_V5
SCHEMA_VERSION = 5
