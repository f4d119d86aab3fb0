"""The initial schema: collections, sources, documents, the embedding cache, chunks with two
vector fields and a lemma tsvector, the per-collection term statistics, events and jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Dense (HNSW) indexes are not created here: an HNSW index needs a fixed dimension, which
# depends on the embedding model, so the search index creates one partial index per collection
# (``WHERE collection_id = N``) on ``vec::vector(dim)`` when it first writes to it.
SCHEMA = r"""
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE collections(
    id bigserial PRIMARY KEY,
    name text UNIQUE NOT NULL,
    created_at text NOT NULL,
    generation bigint NOT NULL DEFAULT 0,
    settings jsonb NOT NULL DEFAULT '{}',
    n_rows bigint NOT NULL DEFAULT 0,
    n_terms bigint NOT NULL DEFAULT 0
);

CREATE TABLE sources(
    collection_id bigint NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path text NOT NULL,
    file_hash text NOT NULL,
    status text NOT NULL,
    doc_ids jsonb NOT NULL DEFAULT '[]',
    error text, reason text,
    fingerprint text NOT NULL DEFAULT '',
    root text NOT NULL DEFAULT '',
    updated_at text NOT NULL,
    PRIMARY KEY(collection_id, path)
);

CREATE TABLE documents(
    collection_id bigint NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    doc_id text NOT NULL,
    title text NOT NULL DEFAULT '',
    status text NOT NULL,
    source text NOT NULL DEFAULT '',
    format text NOT NULL DEFAULT '',
    content_hash text NOT NULL DEFAULT '',
    dedup_hash text NOT NULL DEFAULT '',
    metadata jsonb NOT NULL DEFAULT '{}',
    groups jsonb NOT NULL DEFAULT '["public"]',
    n_chunks integer NOT NULL DEFAULT 0,
    error text, reason text, duplicate_of text,
    text text, sections jsonb,
    updated_at text NOT NULL,
    PRIMARY KEY(collection_id, doc_id)
);
CREATE INDEX documents_dedup ON documents(collection_id, dedup_hash);
CREATE INDEX documents_dup_of ON documents(collection_id, duplicate_of);

CREATE TABLE embeddings(
    model text NOT NULL,
    hash text NOT NULL,
    vector bytea NOT NULL,
    PRIMARY KEY(model, hash)
);

CREATE TABLE chunks(
    id bigserial PRIMARY KEY,
    collection_id bigint NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    doc_id text NOT NULL,
    ord integer NOT NULL,
    text text NOT NULL,
    title text NOT NULL DEFAULT '',
    heading text NOT NULL DEFAULT '',
    page integer,
    start_pos integer NOT NULL DEFAULT 0,
    end_pos integer NOT NULL DEFAULT 0,
    tokens integer NOT NULL DEFAULT 0,
    vec vector NOT NULL,
    tvec vector,
    title_hash text NOT NULL DEFAULT '',
    metadata jsonb NOT NULL DEFAULT '{}',
    fmeta jsonb NOT NULL DEFAULT '{}',
    groups text[] NOT NULL DEFAULT '{public}',
    title_terms text NOT NULL DEFAULT '',
    body_terms text NOT NULL DEFAULT '',
    lex tsvector NOT NULL,
    n_terms integer NOT NULL DEFAULT 0,
    sample_key double precision NOT NULL DEFAULT random()
);
CREATE INDEX chunks_doc ON chunks(collection_id, doc_id, ord);
CREATE INDEX chunks_sample ON chunks(collection_id, sample_key);
CREATE INDEX chunks_lex ON chunks USING gin(lex);
CREATE INDEX chunks_fmeta ON chunks USING gin(fmeta jsonb_path_ops);
CREATE INDEX chunks_groups ON chunks USING gin(groups);

-- document frequency of each lemma in a collection (BM25 idf, and the fuzzy-match vocabulary)
CREATE TABLE lex_terms(
    collection_id bigint NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    term text NOT NULL,
    df bigint NOT NULL,
    PRIMARY KEY(collection_id, term)
);

CREATE TABLE events(
    id bigserial PRIMARY KEY,
    ts text NOT NULL,
    kind text NOT NULL,
    collection text,
    payload jsonb NOT NULL
);
CREATE INDEX events_kind ON events(kind, id);

CREATE TABLE jobs(
    id text PRIMARY KEY,
    kind text NOT NULL,
    params jsonb NOT NULL DEFAULT '{}',
    state text NOT NULL,
    progress integer NOT NULL DEFAULT 0,
    total integer NOT NULL DEFAULT 0,
    message text, error text, result jsonb,
    created_at text NOT NULL,
    updated_at text NOT NULL
);

-- Filter.matches semantics for ranges: numeric when both sides are numbers (as Python's float()
-- parses them), otherwise code-point order (COLLATE "C"); NaN compares false like in Python.
CREATE FUNCTION spravka_float(t text) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF t !~* '^\s*[+-]?((\d+\.?\d*|\.\d+)(e[+-]?\d+)?|inf|infinity|nan)\s*$' THEN
        RETURN NULL;
    END IF;
    RETURN t::double precision;
EXCEPTION WHEN numeric_value_out_of_range THEN
    IF t ~* 'e\s*-' OR t ~* 'e-' THEN RETURN 0; END IF;
    IF t ~ '^\s*-' THEN RETURN '-Infinity'; END IF;
    RETURN 'Infinity';
END $$;

CREATE FUNCTION spravka_cmp(a text, op text, b text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE x double precision := spravka_float(a); y double precision := spravka_float(b);
BEGIN
    IF x IS NOT NULL AND y IS NOT NULL THEN
        IF x = 'NaN' OR y = 'NaN' THEN RETURN false; END IF;
        RETURN CASE op WHEN 'gt' THEN x > y WHEN 'gte' THEN x >= y WHEN 'lt' THEN x < y ELSE x <= y END;
    END IF;
    RETURN CASE op WHEN 'gt' THEN a COLLATE "C" > b COLLATE "C" WHEN 'gte' THEN a COLLATE "C" >= b COLLATE "C"
                   WHEN 'lt' THEN a COLLATE "C" < b COLLATE "C" ELSE a COLLATE "C" <= b COLLATE "C" END;
END $$;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    for table in (
        "jobs",
        "events",
        "lex_terms",
        "chunks",
        "embeddings",
        "documents",
        "sources",
        "collections",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("DROP FUNCTION IF EXISTS spravka_cmp(text, text, text)")
    op.execute("DROP FUNCTION IF EXISTS spravka_float(text)")
