"""Filter parsing, and the property that every evaluator of a filter agrees: the Python
predicate, the SQL compiled for lexical search and the numpy mask of dense search."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spravka.core.errors import InputError
from spravka.core.filters import Condition, Filter, compare, parse_filters
from spravka.core.types import Chunk
from spravka.store.base import IndexRow
from spravka.store.sqlite.db import Database
from spravka.store.sqlite.documents import SqliteDocumentStore
from spravka.store.sqlite.index import SqliteSearchIndex, compile_filter


def test_parse_cli_syntax():
    f = parse_filters(["department=hr", "doc_type=policy,faq", "date>=2024-01-01", "version!=1"], ["HR", " it "])
    assert f.conditions == (
        Condition("department", "eq", "hr"),
        Condition("doc_type", "in", ("policy", "faq")),
        Condition("date", "gte", "2024-01-01"),
        Condition("version", "ne", "1"),
    )
    assert f.groups == ("hr", "it") and f.effective_groups() == ("hr", "it", "public")


def test_parse_mapping_syntax():
    f = parse_filters({"department": "hr", "doc_type": ["faq", "policy"], "date": {"gte": "2024-01-01", "lt": "2025"}})
    assert Condition("date", "lt", "2025") in f.conditions and Condition("doc_type", "in", ("faq", "policy")) in f.conditions


@pytest.mark.parametrize("bad", ["department", "=hr", "a b=c", ">=5", "dep~hr"])
def test_bad_filters_are_input_errors(bad):
    with pytest.raises(InputError):
        parse_filters([bad])


def test_compare_is_numeric_for_numbers_and_lexicographic_otherwise():
    assert compare("10", "gt", "9") and not compare("10", "lt", "9")
    assert compare("2024-05-01", "gte", "2024-01-01") and compare("b", "gt", "a")
    assert not compare("1.10", "gt", "1.9")  # versions compare as numbers: 1.10 < 1.9, documented


def test_groups_public_is_always_allowed_and_none_is_unrestricted():
    assert Filter(groups=("employees",)).allows_groups(["public"])
    assert not Filter(groups=("employees",)).allows_groups(["hr", "managers"])
    assert Filter(groups=None).allows_groups(["it-admins"])
    assert not Filter(groups=()).allows_groups(["hr"]) and Filter(groups=()).allows_groups(["public"])


VALUES = st.sampled_from(["hr", "it", "faq", "policy", "1", "2", "10", "2.5", "2023-04-01", "2024-12-31", "Ёлка"])
FIELDS = st.sampled_from(["department", "doc_type", "version", "date", "tags"])
CONDITION = st.builds(
    lambda f, op, v, vs: Condition(f, op, tuple(vs) if op == "in" else v),
    FIELDS, st.sampled_from(["eq", "ne", "in", "gt", "gte", "lt", "lte"]), VALUES, st.lists(VALUES, min_size=1, max_size=3),
)
FILTER = st.builds(
    lambda cs, g: Filter(tuple(cs), None if g is None else tuple(sorted(set(g)))),
    st.lists(CONDITION, max_size=3), st.one_of(st.none(), st.lists(st.sampled_from(["hr", "it", "employees"]), max_size=2)),
)


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    rng = np.random.default_rng(0)
    home = tmp_path_factory.mktemp("filters")
    db = Database(home / "db.sqlite")
    store = SqliteDocumentStore(db)
    index = SqliteSearchIndex(db, store, home / "index", dim=8)
    pool = ["hr", "it", "faq", "policy", "1", "2", "10", "2.5", "2023-04-01", "2024-12-31", "Ёлка"]
    metas = []
    for i in range(120):
        meta: dict = {}
        for f in ["department", "doc_type", "version", "date", "tags"]:
            r = rng.random()
            if r < 0.45:
                meta[f] = pool[rng.integers(len(pool))]
            elif r < 0.6:
                meta[f] = [pool[j] for j in rng.integers(len(pool), size=2)]
        groups = tuple(sorted({["public", "hr", "it", "managers", "employees"][j] for j in rng.integers(5, size=2)}))
        vec = rng.normal(size=8).astype(np.float32)
        vec /= np.linalg.norm(vec)
        chunk = Chunk(doc_id=f"d{i}", ord=0, text=f"документ {i}", title=f"T{i}")
        index.replace_document("c", f"d{i}", [IndexRow(chunk, vec, vec, f"h{i}", f"t{i}", "документ", meta, groups)])
        metas.append((meta, groups))
    yield index, db, metas
    db.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=FILTER)
def test_sql_numpy_and_python_agree(populated, flt):
    index, db, metas = populated
    expected = {f"d{i}" for i, (m, g) in enumerate(metas) if flt.matches(m, g)}
    where, params = compile_filter(flt)
    cid = index._cid("c")
    sql = {r[0] for r in db.query(f"SELECT c.doc_id FROM chunks c WHERE c.collection_id=? AND {where}", [cid, *params])}
    assert sql == expected
    snap = index.dense.snapshot(cid, 8)
    ids = set(snap.ids[snap.mask(flt)].tolist())
    by_id = {r[0]: r[1] for r in db.query("SELECT id, doc_id FROM chunks WHERE collection_id=?", (cid,))}
    assert {by_id[i] for i in ids} == expected
    assert index.count("c", flt) == len(expected)
