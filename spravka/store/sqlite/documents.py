"""Embedded :class:`~spravka.store.base.DocumentStore` on SQLite (queries in :mod:`spravka.store.sql_documents`)."""

from __future__ import annotations

from typing import Any

from spravka.store.sql_documents import SqlDocumentStore, dumps
from spravka.store.sqlite.db import Database


class SqliteDocumentStore(SqlDocumentStore):
    def __init__(self, db: Database) -> None:
        super().__init__(db)

    def update_collection_settings(self, name: str, values: dict[str, Any]) -> None:
        with self.db.transaction():  # BEGIN IMMEDIATE: the read and the write cannot interleave
            cid = self.collection_id(name, create=True)
            current = self.collection_settings(name)
            current.update(values)
            self._execute("UPDATE collections SET settings=? WHERE id=?", (dumps(current), cid))

    def drop_collection(self, name: str) -> None:
        with self.db.transaction():
            cid = self.collection_id(name)
            for table in ("sources", "documents", "chunks", "titles", "tombstones"):
                self._execute(f"DELETE FROM {table} WHERE collection_id=?", (cid,))
            self._execute("DELETE FROM collections WHERE id=?", (cid,))
