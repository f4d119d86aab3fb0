"""The PostgreSQL backend: documents, sources, the embedding cache, events and jobs in tables;
chunks with two pgvector fields (HNSW, cosine) and a ``tsvector`` of our own lemmas.

Needs the ``postgres`` extra (psycopg 3, psycopg-pool, pgvector, alembic). Select it with
``SPRAVKA_STORE__URL=postgres://user:password@host:5432/spravka``.
"""
