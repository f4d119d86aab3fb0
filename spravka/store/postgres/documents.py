""":class:`~spravka.store.base.DocumentStore` on PostgreSQL: the SQLite store's queries
(:mod:`spravka.store.sql_documents`) in PostgreSQL's dialect."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from spravka.store.postgres.db import PgDatabase
from spravka.store.sql_documents import SqlDocumentStore, dumps


class PgDocumentStore(SqlDocumentStore):
    order_collate = ' COLLATE "C"'  # byte order, as SQLite sorts
    chunk_count_sql = "c.n_rows"  # kept by the index (a count(*) over chunks is a scan here)

    def __init__(self, db: PgDatabase) -> None:
        super().__init__(db)

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def json_in(self, value: Any) -> Any:
        return Jsonb(value, dumps=dumps)

    def json_out(self, value: Any) -> Any:
        return value  # psycopg decodes jsonb itself

    def update_collection_settings(self, name: str, values: dict[str, Any]) -> None:
        with self.db.transaction():
            cid = self.collection_id(name, create=True)
            self._execute("UPDATE collections SET settings = settings || ? WHERE id=?", (self.json_in(values), cid))

    def drop_collection(self, name: str) -> None:
        with self.db.transaction():
            cid = self.collection_id(name)
            for kind in ("vec", "tvec"):
                self._execute(f"DROP INDEX IF EXISTS chunks_{kind}_c{cid}")
            self._execute("DELETE FROM collections WHERE id=?", (cid,))  # cascades
