"""Alembic environment: Spravka runs migrations programmatically (``PgDatabase.migrate``) and hands
over an open SQLAlchemy connection; ``alembic -x url=postgresql+psycopg://...`` works too."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

connection = context.config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
else:  # the alembic command line
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("alembic: pass -x url=postgresql+psycopg://… or set sqlalchemy.url")
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
