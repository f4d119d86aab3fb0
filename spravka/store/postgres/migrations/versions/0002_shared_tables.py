"""The shared tables that lived in a side SQLite file beside a PostgreSQL store: the human-task
inbox, the delivery outbox, API keys, the ticket classifier's data, the answer cache, Telegram
chat bindings and a small key/value ``meta`` table. With them here, several API servers (and a
bot process) on several hosts share one inbox, one outbox, one set of keys.

The columns mirror the embedded schema (``spravka/store/sqlite/db.py``, versions 2-5) so the same
queries run on both; JSON stays in ``text`` columns for that reason. ``outbox.rowid`` is the
insertion order that SQLite keeps implicitly under that name (ties of the same second).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("meta", "inbox", "outbox", "api_keys", "classify_docs", "classify_examples", "classify_tickets",
          "answer_cache", "telegram_bindings")

SCHEMA = r"""
CREATE TABLE meta(key text PRIMARY KEY, value text);

CREATE TABLE inbox(
    id text PRIMARY KEY,
    type text NOT NULL,
    title text NOT NULL DEFAULT '',
    payload text NOT NULL DEFAULT '{}',
    state text NOT NULL,
    assignee text,
    priority integer NOT NULL DEFAULT 0,
    collection text,
    ref text,
    dedup_key text UNIQUE,
    resolution text,
    created_at text NOT NULL,
    updated_at text NOT NULL
);
CREATE INDEX inbox_state ON inbox(state, type, priority DESC, created_at);

CREATE TABLE outbox(
    rowid bigserial NOT NULL,
    id text PRIMARY KEY,
    target text NOT NULL,
    payload text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    state text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at double precision NOT NULL,
    last_error text,
    response text,
    created_at text NOT NULL,
    delivered_at text
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);

CREATE TABLE api_keys(
    id text PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL,
    groups text NOT NULL DEFAULT '[]',
    salt text NOT NULL,
    hash text NOT NULL,
    rate_per_minute double precision,
    created_at text NOT NULL,
    revoked_at text,
    last_used_at text
);
CREATE INDEX api_keys_active ON api_keys(revoked_at, name);

CREATE TABLE classify_docs(
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    name text NOT NULL,
    version integer NOT NULL,
    hash text NOT NULL,
    body text NOT NULL,
    created_at text NOT NULL,
    UNIQUE(kind, name, version)
);
CREATE TABLE classify_examples(
    id bigserial PRIMARY KEY,
    taxonomy text NOT NULL,
    text text NOT NULL,
    text_hash text NOT NULL,
    label text NOT NULL,
    source text NOT NULL,
    ref text,
    actor text,
    created_at text NOT NULL,
    UNIQUE(taxonomy, text_hash)
);
CREATE INDEX classify_examples_ref ON classify_examples(taxonomy, ref);
CREATE TABLE classify_tickets(
    taxonomy text NOT NULL,
    ticket_id text NOT NULL,
    text text NOT NULL,
    metadata text NOT NULL DEFAULT '{}',
    label text,
    confidence double precision,
    method text,
    status text NOT NULL,
    triage_id text,
    created_at text NOT NULL,
    updated_at text NOT NULL,
    PRIMARY KEY(taxonomy, ticket_id)
);

CREATE TABLE answer_cache(
    key text PRIMARY KEY,
    scope text NOT NULL,
    collection text NOT NULL,
    question text NOT NULL,
    vector bytea,
    entry text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL DEFAULT 0,
    hits integer NOT NULL DEFAULT 0
);
CREATE INDEX answer_cache_scope ON answer_cache(scope, created_at);

CREATE TABLE telegram_bindings(
    chat_id bigint PRIMARY KEY,
    key_id text NOT NULL,
    user_id bigint,
    created_at text NOT NULL
);
CREATE INDEX events_ts ON events(ts);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS events_ts")
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table}")
