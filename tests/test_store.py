"""The embedded store: vector snapshots that catch up incrementally, schema versions, bad files."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from spravka.core.errors import SchemaVersionError, StoreError
from spravka.core.filters import Filter
from spravka.core.types import Chunk
from spravka.store.base import IndexRow
from spravka.store.sqlite.db import SCHEMA_VERSION, Database
from spravka.store.sqlite.documents import SqliteDocumentStore
from spravka.store.sqlite.index import SqliteSearchIndex

DIM = 16


def make(home):
    db = Database(home / "spravka.db")
    store = SqliteDocumentStore(db)
    return db, store, SqliteSearchIndex(db, store, home / "index", DIM)


def row(doc: str, ord_: int, vec: np.ndarray, text: str = "текст") -> IndexRow:
    vec = (vec / np.linalg.norm(vec)).astype(np.float32)
    return IndexRow(Chunk(doc_id=doc, ord=ord_, text=text, title=doc), vec, vec, f"t-{doc}", doc, text, {}, ("public",))


def best(index, res) -> str:
    """The document of the highest-scoring dense candidate (candidates come unordered)."""
    top = res.ids[int(np.argmax(res.content))]
    return index.fetch("c", [top])[top].doc_id


def unit(i: int) -> np.ndarray:
    v = np.full(DIM, 0.01, dtype=np.float32)
    v[i % DIM] = 1.0
    return v


def test_snapshot_catches_up_without_a_rebuild(tmp_path):
    db, store, index = make(tmp_path)
    for i in range(10):
        index.replace_document("c", f"d{i}", [row(f"d{i}", 0, unit(i))])
    assert best(index, index.search_dense("c", unit(3), 3, Filter())) == "d3"
    snap_before = index.dense.snapshot(store.collection_id("c"), DIM)
    persisted = snap_before.persisted_generation

    index.replace_document("c", "d3", [row("d3", 0, unit(7))])  # d3 moves
    index.replace_document("c", "new", [row("new", 0, unit(3))])  # and a new doc takes its place
    index.delete_documents("c", ["d5"])
    assert best(index, index.search_dense("c", unit(3), 1, Filter())) == "new"
    snap = index.dense.snapshot(store.collection_id("c"), DIM)
    assert snap is snap_before and snap.persisted_generation == persisted  # caught up in place
    assert snap.size == 10
    ids = index.search_dense("c", unit(5), 10, Filter()).ids
    assert "d5" not in {h.doc_id for h in index.fetch("c", ids).values()}

    # a second process loads the persisted snapshot and applies the same changes from tombstones
    db2, store2, index2 = make(tmp_path)
    assert best(index2, index2.search_dense("c", unit(3), 1, Filter())) == "new"
    assert index2.dense.snapshot(store2.collection_id("c"), DIM).size == 10
    db.close()
    db2.close()


def test_large_changes_compact_and_persist_the_snapshot(tmp_path, monkeypatch):
    from spravka.store.sqlite import dense

    monkeypatch.setattr(dense, "_COMPACT_MIN", 5)
    db, store, index = make(tmp_path)
    for i in range(20):
        index.replace_document("c", f"d{i}", [row(f"d{i}", 0, unit(i))])
    index.search_dense("c", unit(0), 1, Filter())
    for i in range(10):
        index.delete_documents("c", [f"d{i}"])
    index.search_dense("c", unit(0), 1, Filter())
    cid = store.collection_id("c")
    snap = index.dense.snapshot(cid, DIM)
    assert snap.persisted_generation == snap.generation and len(snap.ids) == 10 and snap.alive.all()
    assert db.query("SELECT count(*) FROM tombstones WHERE collection_id=?", (cid,))[0][0] == 0
    # another process with an older snapshot than the horizon reloads instead of catching up
    _, store2, index2 = make(tmp_path)
    assert index2.dense.snapshot(cid, DIM).size == 10
    db.close()


def test_drop_removes_a_collection(tmp_path):
    db, store, index = make(tmp_path)
    index.replace_document("c", "d", [row("d", 0, unit(1))])
    index.drop("c")
    assert index.count("c") == 0 and index.search_dense("c", unit(1), 3, Filter()).ids == []
    assert index.search_lexical("c", ["текст"], 3, Filter()).ids == []
    db.close()


def test_newer_schema_is_refused(tmp_path):
    db = Database(tmp_path / "spravka.db")
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.close()
    with pytest.raises(SchemaVersionError, match="newer Spravka"):
        Database(tmp_path / "spravka.db")


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    (tmp_path / "spravka.db").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError):
        Database(tmp_path / "spravka.db")


def test_transactions_roll_back_together(tmp_path):
    db, store, index = make(tmp_path)
    with pytest.raises(RuntimeError), store.transaction():
        index.replace_document("c", "d", [row("d", 0, unit(1))])
        raise RuntimeError("crash between the index write and the document commit")
    assert index.count("c") == 0
    assert sqlite3.connect(tmp_path / "spravka.db").execute("SELECT count(*) FROM chunks").fetchone()[0] == 0
    db.close()


def test_vector_dimension_mismatch_is_refused(tmp_path):
    db, store, index = make(tmp_path)
    bad = row("d", 0, unit(1))
    bad.vector = np.ones(DIM + 1, dtype=np.float32)
    with pytest.raises(ValueError):
        index.replace_document("c", "d", [bad])
    db.close()
