"""The in-memory BM25 index scores exactly as SQLite FTS5's bm25() does, and stays current."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from spravka.core.filters import Filter, parse_filters
from spravka.core.types import Chunk
from spravka.store.base import IndexRow
from spravka.store.lexical import Bm25Index
from spravka.store.sqlite.db import Database
from spravka.store.sqlite.dense import DenseStore
from spravka.store.sqlite.documents import SqliteDocumentStore
from spravka.store.sqlite.index import SqliteSearchIndex

DIM = 8
WORDS = ["возврат", "товар", "доставка", "курьер", "отпуск", "заявление", "пароль", "vpn", "2024", "гарантия",
         "чек", "срок", "день", "оплата", "карта", "монетизация", "видео", "канал", "ошибка", "приложение"]


def make(home):
    db = Database(home / "spravka.db")
    store = SqliteDocumentStore(db)
    return db, SqliteSearchIndex(db, store, home / "index", DIM)


def rows_for(rnd: random.Random, doc: str, n: int) -> list[IndexRow]:
    out = []
    dept = rnd.choice(["hr", "it", "sales"])
    for k in range(n):
        body = " ".join(rnd.choices(WORDS[: rnd.randint(5, len(WORDS))], k=rnd.randint(1, 40)))
        title = " ".join(rnd.choices(WORDS, k=rnd.randint(0, 4)))
        vec = np.asarray(rnd.sample(range(1, 50), DIM), dtype=np.float32)
        vec /= np.linalg.norm(vec)
        out.append(IndexRow(Chunk(doc_id=doc, ord=k, text=body, title=title), vec, vec, f"t-{doc}", title, body,
                            {"department": dept}, (rnd.choice(["public", "hr"]),)))
    return out


def fill(index: SqliteSearchIndex, rnd: random.Random, docs: int, rows: int, prefix: str = "d") -> None:
    """``docs`` documents of ``rows`` random chunks each, ids ``<prefix>0``, ``<prefix>1``, …"""
    for d in range(docs):
        index.replace_document("c", f"{prefix}{d}", rows_for(rnd, f"{prefix}{d}", rows))


def both(index: SqliteSearchIndex, terms: list[str], flt: Filter, boost: float = 2.0) -> tuple[dict, dict]:
    out = []
    for engine in ("fts5", "memory"):
        index.lexical_engine = engine
        res = index.search_lexical("c", terms, 10_000, flt, boost, fuzzy=False)
        assert res.complete
        out.append(dict(zip(res.ids, res.scores, strict=True)))
    return out[0], out[1]


def assert_same(index: SqliteSearchIndex, rnd: random.Random, queries: int = 40) -> None:
    filters = [Filter(), parse_filters(["department=hr"], None), parse_filters([], ["hr"])]
    for _ in range(queries):
        terms = rnd.choices(WORDS + ["нетслова"], k=rnd.randint(1, 6))
        flt = rnd.choice(filters)
        boost = rnd.choice([1.0, 2.0, 3.5])
        fts, mem = both(index, terms, flt, boost)
        assert set(fts) == set(mem), terms
        for i, s in fts.items():
            assert mem[i] == pytest.approx(s, rel=1e-5), (terms, i)


def test_scores_equal_fts5_bm25_with_filters_and_title_boost(tmp_path):
    rnd = random.Random(3)
    db, index = make(tmp_path)
    for d in range(60):
        index.replace_document("c", f"d{d}", rows_for(rnd, f"d{d}", rnd.randint(1, 4)))
    assert_same(index, rnd)
    # results come best first, ties broken by chunk id
    index.lexical_engine = "memory"
    res = index.search_lexical("c", ["товар", "чек"], 5, Filter())
    assert res.scores == sorted(res.scores, reverse=True) and len(res.ids) == 5 and not res.complete
    db.close()


def test_index_catches_up_with_changes_and_other_processes(tmp_path):
    rnd = random.Random(5)
    db, index = make(tmp_path)
    fill(index, rnd, 40, 3)
    assert_same(index, rnd, 10)
    cid = index.store.collection_id("c")
    built = index.bm25(cid)

    index.replace_document("c", "d3", rows_for(rnd, "d3", 2))  # replaced
    index.replace_document("c", "new", rows_for(rnd, "new", 2))  # added
    index.delete_documents("c", ["d7"])  # deleted
    assert index.bm25(cid) is built  # caught up in place, not rebuilt
    assert built.delta_rows == 4 and built.n_alive == 40 * 3 - 3 - 3 + 4
    assert_same(index, rnd, 20)
    index.lexical_engine = "memory"
    gone = {h.doc_id for h in index.fetch("c", index.search_lexical("c", WORDS, 1000, Filter()).ids).values()}
    assert "d7" not in gone and "new" in gone

    # another process writes: this one sees it on its next query
    db2, index2 = make(tmp_path)
    index2.replace_document("c", "other", rows_for(rnd, "other", 1))
    assert_same(index, rnd, 10)
    index.drop("c")
    index.lexical_engine = "memory"
    assert index.search_lexical("c", WORDS, 10, Filter()).ids == []
    db.close()
    db2.close()


def test_many_changes_trigger_a_rebuild(tmp_path):
    idx = Bm25Index(np.arange(1, 11), ["a"] * 10, ["товар чек"] * 10)
    assert not idx.needs_rebuild()
    idx.update(np.arange(1, 3000), np.arange(11, 3000), ["b"] * 2989, ["товар"] * 2989)
    assert idx.needs_rebuild()
    ids, scores, complete = idx.search(["чек"], 100)
    assert complete and sorted(ids.tolist()) == list(range(1, 11)) and np.all(scores > 0)


def test_empty_and_unknown_terms():
    idx = Bm25Index(np.zeros(0, dtype=np.int64), [], [])
    assert idx.search(["что-то"], 5)[0].size == 0
    idx = Bm25Index(np.array([4, 9]), ["", "vpn"], ["пароль", ""])
    ids, scores, _ = idx.search(["vpn", "нет"], 5)
    assert ids.tolist() == [9] and scores[0] > 0


def test_a_new_process_loads_the_saved_index_and_replays_changes(tmp_path, monkeypatch):
    rnd = random.Random(11)
    db, index = make(tmp_path)
    fill(index, rnd, 40, 3)
    cid = index.store.collection_id("c")
    index.bm25(cid)  # the first query builds the index and saves it
    saved = tmp_path / "index" / f"c{cid}" / "bm25"
    assert (saved / "state.json").is_file()

    def no_build(*_a, **_k):
        raise AssertionError("rebuilt although a saved index was there")

    with monkeypatch.context() as m:
        m.setattr(Bm25Index, "__init__", no_build)
        db2, fresh = make(tmp_path)  # a restart: nothing in memory
        assert fresh.bm25(cid).n_alive == 120
        assert_same(fresh, rnd, 15)
        db2.close()

        # changes made after the save are replayed from the database, not rebuilt
        index.replace_document("c", "d3", rows_for(rnd, "d3", 2))
        index.replace_document("c", "new", rows_for(rnd, "new", 2))
        index.delete_documents("c", ["d7"])
        db3, fresh = make(tmp_path)
        caught_up = fresh.bm25(cid)
        assert caught_up.delta_rows == 4 and caught_up.n_alive == 120 - 3 - 3 + 4
        assert_same(fresh, rnd, 20)
        db3.close()
    db.close()


@pytest.mark.parametrize("damage", ["truncated postings", "garbage state", "newer than the database", "missing terms"])
def test_a_damaged_or_foreign_saved_index_is_rebuilt(tmp_path, damage):
    rnd = random.Random(13)
    db, index = make(tmp_path)
    fill(index, rnd, 20, 2)
    cid = index.store.collection_id("c")
    index.bm25(cid)
    index.delete_documents("c", ["d0"])  # a change after the save: a stale index would still hold d0
    db.close()
    saved = tmp_path / "index" / f"c{cid}" / "bm25"
    if damage == "truncated postings":
        np.save(saved / "rows.npy", np.load(saved / "rows.npy")[:-3])
    elif damage == "garbage state":
        (saved / "state.json").write_text("{not json")
    elif damage == "newer than the database":  # e.g. the database was restored from a backup
        state = json.loads((saved / "state.json").read_text())
        (saved / "state.json").write_text(json.dumps(state | {"generation": state["generation"] + 100}))
    else:
        (saved / "terms.json").unlink()
    db, fresh = make(tmp_path)
    assert (Bm25Index.load(saved, db.instance_id) is None) == (damage != "newer than the database")
    assert fresh.bm25(cid).n_alive == 38
    assert_same(fresh, rnd, 15)
    assert Bm25Index.load(saved, db.instance_id) is not None  # and saved again, sound this time
    db.close()


def test_files_of_another_database_in_the_same_folder_are_not_used(tmp_path):
    """spravka.db deleted and re-created: chunk ids and generations start again and would collide
    with the saved BM25 index and vector snapshot; neither is loaded."""
    rnd = random.Random(17)
    db, index = make(tmp_path)
    fill(index, rnd, 10, 2, prefix="old")
    cid = index.store.collection_id("c")
    index.bm25(cid)
    index.dense.snapshot(cid, DIM)
    db.close()
    for name in ("spravka.db", "spravka.db-wal", "spravka.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    db, index = make(tmp_path)
    fill(index, rnd, 12, 1, prefix="new")  # same collection id, the generation passes the saved one
    assert index.store.collection_id("c") == cid
    assert index.bm25(cid).n_alive == 12
    assert index.dense.snapshot(cid, DIM).size == 12
    assert_same(index, rnd, 10)
    index.lexical_engine = "memory"
    found = {h.doc_id for h in index.fetch("c", index.search_lexical("c", WORDS, 1000, Filter()).ids).values()}
    assert found and all(d.startswith("new") for d in found)
    db.close()


def test_prepare_saves_what_a_restarted_process_loads(tmp_path, monkeypatch):
    rnd = random.Random(19)
    db, index = make(tmp_path)
    fill(index, rnd, 15, 2)
    index.prepare("c")  # the end of an ingestion: nothing is searched yet
    cid = index.store.collection_id("c")
    assert (tmp_path / "index" / f"c{cid}" / "bm25" / "state.json").is_file()
    assert (tmp_path / "index" / f"c{cid}" / "current").is_file()
    monkeypatch.setattr(Bm25Index, "__init__", lambda *a, **k: pytest.fail("rebuilt after prepare"))
    db2, fresh = make(tmp_path)
    assert_same(fresh, rnd, 10)
    db2.close()
    db.close()


def test_a_process_far_behind_takes_a_newer_save_instead_of_rebuilding(tmp_path, monkeypatch):
    """A server holds the index in memory while another process bulk-loads and prepares: the
    server's next query loads that process's save rather than replaying or rebuilding."""
    rnd = random.Random(23)
    db, server = make(tmp_path)
    fill(server, rnd, 10, 2)
    cid = server.store.collection_id("c")
    server.bm25(cid)
    server.dense.snapshot(cid, DIM)
    db2, loader = make(tmp_path)
    fill(loader, rnd, 1100, 2, prefix="bulk")  # 2,200 new rows: past the delta limit of the 20-row index
    loader.prepare("c")
    db2.close()
    monkeypatch.setattr(Bm25Index, "__init__", lambda *a, **k: pytest.fail("rebuilt although a newer save was there"))
    current = server.bm25(cid)
    assert current.n_alive == 2220 and current.delta_rows == 0
    assert_same(server, rnd, 10)
    # the vector snapshot likewise: the loader's persisted one is mapped, nothing replayed
    monkeypatch.setattr(DenseStore, "_catch_up", lambda *a, **k: pytest.fail("replayed although a newer snapshot was there"))
    monkeypatch.setattr(DenseStore, "_build", lambda *a, **k: pytest.fail("rebuilt although a newer snapshot was there"))
    assert server.dense.snapshot(cid, DIM).size == 2220
    db.close()
