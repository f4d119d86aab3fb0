"""Backends for the conformance suite: every test here runs against each of them.

* ``embedded``: SQLite + numpy snapshots in a temporary data directory (always runs);
* ``postgres``: a real PostgreSQL 16 with pgvector, started by the suite from the ``pgserver``
  wheel (no Docker, no root needed; as root it runs the server as a ``pgserver`` system user).
  One database is migrated once and used as the template of a fresh database per test;
* ``milvus``: Milvus Lite (the C++ engine in the ``milvus-lite`` wheel) in a temporary file, one
  server per session, a fresh collection prefix per test.

A backend whose package is missing is skipped locally with the reason; under CI (``CI`` set)
it fails instead, so a broken install can never pass as "skipped".
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BACKENDS = ["embedded", "postgres", "milvus"]
DIM = 16
_counter = itertools.count()


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"backend unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class Backend:
    name: str
    store: Any
    index: Any
    close: Any


# ---- PostgreSQL ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server() -> Iterator[dict[str, str]]:
    try:
        import alembic  # noqa: F401
        import pgserver  # noqa: F401
        import pgvector  # noqa: F401
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as e:
        unavailable(f"postgres backend: {e.name} is not installed (pip install 'spravka[postgres]' pgserver)")
    import pgserver

    from spravka.store.postgres.db import PgDatabase

    root = Path(tempfile.mkdtemp(prefix="spravka-pg-"))
    try:
        srv = pgserver.get_server(root / "data", cleanup_mode="stop")
    except Exception as e:  # noqa: BLE001
        unavailable(f"postgres backend: pgserver could not start PostgreSQL: {e}")
    base = srv.get_uri()

    def url_of(db: str) -> str:
        return base.replace("/postgres?", f"/{db}?", 1)

    srv.psql("DROP DATABASE IF EXISTS spravka_tpl;")
    srv.psql("CREATE DATABASE spravka_tpl;")
    PgDatabase(url_of("spravka_tpl")).close()  # migrate once; each test copies the template
    yield {"base": base, "template": url_of("spravka_tpl"), "srv": srv, "url_of": url_of}  # type: ignore[misc]
    with contextlib.suppress(Exception):
        srv.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def fresh_pg_database(pg_server) -> tuple[str, Any]:
    """A fresh, migrated database (a copy of the template) and its dropper."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    srv = pg_server["srv"]
    srv.psql(f"CREATE DATABASE {name} TEMPLATE spravka_tpl;")

    def drop() -> None:
        with contextlib.suppress(Exception):
            srv.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);")

    return pg_server["url_of"](name), drop


@pytest.fixture(scope="session")
def fresh_pg(pg_server):
    """Make a fresh migrated database: ``url, drop = fresh_pg()``."""
    return lambda: fresh_pg_database(pg_server)


# ---- Milvus -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def milvus_client() -> Iterator[tuple[Any, str]]:
    try:
        import milvus_lite  # noqa: F401
        import pymilvus
    except ImportError as e:
        unavailable(f"milvus backend: {e.name} is not installed (pip install 'spravka[milvus]' milvus-lite)")
    root = Path(tempfile.mkdtemp(prefix="spravka-milvus-"))
    path = str(root / "conformance.db")
    try:
        client = pymilvus.MilvusClient(path)
    except Exception as e:  # noqa: BLE001
        unavailable(f"milvus backend: Milvus Lite could not start: {e}")
    yield client, path
    with contextlib.suppress(Exception):
        client.close()
    shutil.rmtree(root, ignore_errors=True)


# ---- the parametrised backend ---------------------------------------------------------------------
def open_backend(name: str, request: pytest.FixtureRequest, tmp: Path, dim: int = DIM) -> Backend:
    if name == "embedded":
        from spravka.store.sqlite.db import Database
        from spravka.store.sqlite.documents import SqliteDocumentStore
        from spravka.store.sqlite.index import SqliteSearchIndex

        db = Database(tmp / "spravka.db")
        store = SqliteDocumentStore(db)
        return Backend(name, store, SqliteSearchIndex(db, store, tmp / "index", dim), db.close)
    if name == "postgres":
        url, drop = fresh_pg_database(request.getfixturevalue("pg_server"))
        from spravka.store.postgres.db import PgDatabase
        from spravka.store.postgres.documents import PgDocumentStore
        from spravka.store.postgres.index import PgSearchIndex

        pdb = PgDatabase(url, max_size=4)
        pstore = PgDocumentStore(pdb)

        def pclose() -> None:
            pdb.close()
            drop()

        return Backend(name, pstore, PgSearchIndex(pdb, pstore, dim, cache_dir=tmp / "index"), pclose)
    if name == "milvus":
        client, path = request.getfixturevalue("milvus_client")
        from spravka.store.milvus.config import MilvusConfig
        from spravka.store.milvus.index import MilvusSearchIndex
        from spravka.store.sqlite.db import Database
        from spravka.store.sqlite.documents import SqliteDocumentStore

        db = Database(tmp / "spravka.db")
        store = SqliteDocumentStore(db)
        prefix = f"t{os.getpid()}x{next(_counter)}"
        index = MilvusSearchIndex(MilvusConfig(path, prefix=prefix), store, dim, client=client)

        def close() -> None:
            for c in client.list_collections():
                if c.startswith(prefix + "_"):
                    client.drop_collection(c)
            db.close()

        return Backend(name, store, index, close)
    raise ValueError(name)


@pytest.fixture(scope="session")
def backend_opener():
    """``open_backend`` for fixtures of other scopes (module-scoped populated indexes)."""
    return open_backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = open_backend(request.param, request, tmp_path)
    yield b
    b.close()
