"""Connection pool, transactions and schema migrations for the PostgreSQL backend.

One :class:`PgDatabase` is shared by the document store and the search index, exactly like the
embedded :class:`~spravka.store.sqlite.db.Database`: the ingestion pipeline writes a document's
chunks and its status in one ``store.transaction()``, so both must use the same connection. The
connection of the outermost transaction is bound to the calling thread; nested blocks reuse it
and only the outermost one commits. Outside a transaction every call borrows a pooled
autocommit connection.

The schema is managed by Alembic (``spravka/store/postgres/migrations``). Opening a database
upgrades it under an advisory lock (several app processes may start at once); a database written
by a newer Spravka fails with a clear message instead of being touched.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from spravka.core.errors import ConfigError, SchemaVersionError, StoreError

#: the newest Alembic revision this code knows (``migrations/versions``)
HEAD = "0002"
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = 0x5350_5241  # "SPRA": serialises concurrent migrators


def _imports() -> Any:
    try:
        import psycopg
        import psycopg_pool
        from pgvector.psycopg import register_vector
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ConfigError(
            f"the PostgreSQL backend needs the 'postgres' extra ({e.name} is missing)",
            hint="pip install 'spravka[postgres]'",
        ) from e
    return psycopg, psycopg_pool, register_vector


def normalize_url(url: str) -> str:
    """``postgres://`` and ``postgresql+psycopg://`` → the ``postgresql://`` libpq understands."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgres", "postgresql"):
        raise ConfigError(
            f"not a PostgreSQL URL: {redact(url)}", hint="use postgres://user:password@host:5432/db"
        )
    return urlunsplit(("postgresql", *parts[1:]))


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, *parts[2:]))
    return url


class PgDatabase:
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8, migrate: bool = True) -> None:
        psycopg, psycopg_pool, register_vector = _imports()
        self.url = normalize_url(url)
        self._psycopg = psycopg
        self._local = threading.local()
        try:
            if migrate:
                self.migrate()
            self.vector_version = self._extension_version()
        except psycopg.OperationalError as e:
            raise StoreError(f"cannot connect to PostgreSQL at {redact(self.url)}: {e}") from e

        def configure(conn: Any) -> None:
            register_vector(conn)

        self.pool = psycopg_pool.ConnectionPool(
            self.url,
            min_size=min_size,
            max_size=max_size,
            open=True,
            configure=configure,
            kwargs={"autocommit": True},
            name="spravka",
        )
        self.pool.wait(timeout=30)

    # ---- schema --------------------------------------------------------------------------------
    def _connect(self) -> Any:
        return self._psycopg.connect(self.url, autocommit=True)

    def _extension_version(self) -> tuple[int, ...]:
        with self._connect() as conn:
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname='vector'").fetchone()
        if not row:
            raise StoreError(
                "the pgvector extension is not installed in this database",
                hint="CREATE EXTENSION vector (needs pgvector on the server)",
            )
        return tuple(int(x) for x in row[0].split(".")[:3] if x.isdigit())

    def schema_version(self) -> str | None:
        with self._connect() as conn:
            exists = conn.execute("SELECT to_regclass('alembic_version')").fetchone()[0]
            if exists is None:
                return None
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            return row[0] if row else None

    def migrate(self) -> None:
        """Upgrade to :data:`HEAD` (a no-op, without importing Alembic, when already there)."""
        current = self.schema_version()
        if current == HEAD:
            return
        if current is not None and current > HEAD:
            raise SchemaVersionError(
                f"the PostgreSQL schema was written by a newer Spravka (revision {current}, this one knows {HEAD})",
                hint="upgrade Spravka, or point store.url at another database",
            )
        try:
            import sqlalchemy
            from alembic import command
            from alembic.config import Config
            from sqlalchemy.pool import NullPool
        except ImportError as e:  # pragma: no cover
            raise ConfigError(
                "migrating the PostgreSQL schema needs alembic", hint="pip install 'spravka[postgres]'"
            ) from e
        sa_url = "postgresql+psycopg" + self.url[len("postgresql") :]
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        engine = sqlalchemy.create_engine(sa_url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"))
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        finally:
            engine.dispose()

    # ---- connections and transactions ------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Re-entrant per thread: only the outermost block begins and commits."""
        st = self._local
        conn = getattr(st, "conn", None)
        if conn is not None:
            yield conn
            return
        with self.pool.connection() as conn, conn.transaction():
            st.conn = conn
            try:
                yield conn
            finally:
                st.conn = None

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """The transaction's connection when inside one, else a pooled autocommit connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self.pool.connection() as conn:
            yield conn

    @property
    def in_transaction(self) -> bool:
        return getattr(self._local, "conn", None) is not None

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        with self.connection() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def execute(self, sql: str, params: Any = None) -> int:
        with self.connection() as conn:
            return conn.execute(sql, params).rowcount

    def close(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()
