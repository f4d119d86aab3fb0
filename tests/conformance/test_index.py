"""The SearchIndex contract, run against every backend (see conftest.py): upsert and re-upsert,
delete, filters, access groups, collection isolation, count, drop, fetch, dense and lexical
candidates, and hybrid ranking through the real HybridSearcher."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spravka.core.filters import Condition, Filter, parse_filters
from spravka.core.settings import SearchSettings
from spravka.core.text.lemmas import analyze
from spravka.core.types import Chunk
from spravka.search.hybrid import HybridSearcher
from spravka.store.base import IndexRow

BACKENDS = ["embedded", "postgres", "milvus"]
DIM = 16  # the suite's vector size (conftest.DIM)


def unit(*dims: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    for d in dims:
        v[d] = 1.0
    if noise:
        v += np.random.default_rng(seed).normal(scale=noise, size=DIM).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def row(
    doc: str,
    ord_: int,
    text: str,
    *,
    title: str = "",
    meta: dict | None = None,
    groups: tuple[str, ...] = ("public",),
    v: np.ndarray | None = None,
    tv: np.ndarray | None = None,
) -> IndexRow:
    v = unit(ord_ % DIM) if v is None else v
    chunk = Chunk(doc_id=doc, ord=ord_, text=text, title=title, start=ord_ * 100, end=ord_ * 100 + len(text))
    return IndexRow(
        chunk,
        v,
        tv if tv is not None else (v if title else None),
        f"h-{doc}-{title}",
        " ".join(analyze(title)),
        " ".join(analyze(text)),
        meta or {},
        groups,
    )


def docs_of(index, collection: str, ids) -> set[str]:
    return {h.doc_id for h in index.fetch(collection, list(ids)).values()}


class StubEmbedder:
    """Query vectors chosen by the test (the searcher only needs embed_query)."""

    name, dim = "stub", DIM

    def __init__(self) -> None:
        self.next = unit(DIM - 1)

    def embed_query(self, text: str) -> np.ndarray:
        return self.next


# ---- writes ----------------------------------------------------------------------------------------
def test_replace_document_is_an_idempotent_upsert(backend):
    idx = backend.index
    rows = [row("a", i, f"пункт {i} регламента об отпуске") for i in range(3)]
    with backend.store.transaction():
        idx.replace_document("c", "a", rows)
    idx.replace_document("c", "b", [row("b", 0, "настройка принтера")])
    assert idx.count("c") == 4
    idx.replace_document("c", "a", rows)  # same rows again: nothing changes
    assert idx.count("c") == 4
    idx.replace_document(
        "c", "a", [row("a", 0, "новая редакция: отпуск переносится"), row("a", 1, "второй пункт")]
    )
    assert idx.count("c") == 3
    res = idx.search_dense("c", unit(0), 10, Filter())
    hits = idx.fetch("c", res.ids)
    a_texts = sorted(h.text for h in hits.values() if h.doc_id == "a")
    assert a_texts == ["второй пункт", "новая редакция: отпуск переносится"]
    assert idx.search_lexical("c", analyze("регламент"), 10, Filter(), fuzzy=False).ids == []
    assert docs_of(idx, "c", idx.search_lexical("c", analyze("переносится"), 10, Filter()).ids) == {"a"}
    h = next(h for h in hits.values() if h.text.startswith("новая"))
    assert (h.chunk_id, h.ord, h.start, h.collection) == ("a#0", 0, 0, "c")
    assert idx.chunk_spans("c", "a") == [(0, 0, len("новая редакция: отпуск переносится")), (1, 100, 112)]
    idx.replace_document("c", "a", [])
    assert idx.count("c") == 1


def test_delete_documents(backend):
    idx = backend.index
    for d in ("a", "b", "c"):
        idx.replace_document("k", d, [row(d, 0, f"документ {d} про доставку"), row(d, 1, "и ещё текст")])
    idx.delete_documents("k", ["b", "missing"])
    idx.delete_documents("no-such-collection", ["a"])
    assert idx.count("k") == 4
    dense = idx.search_dense("k", unit(0), 10, Filter())
    lexical = idx.search_lexical("k", analyze("доставка"), 10, Filter())
    assert docs_of(idx, "k", dense.ids) == {"a", "c"} and docs_of(idx, "k", lexical.ids) == {"a", "c"}
    idx.delete_documents("k", ["a", "c"])
    assert idx.count("k") == 0
    assert idx.search_dense("k", unit(0), 10, Filter()).ids == []
    assert idx.search_lexical("k", analyze("доставка"), 10, Filter()).ids == []


def test_fetch_count_drop_and_unknown_collections(backend):
    idx = backend.index
    assert idx.count("nothing") == 0 and idx.fetch("nothing", [1, 2]) == {}
    idx.prepare("nothing")  # preparing an unknown collection is a no-op, not an error
    assert idx.search_dense("nothing", unit(0), 5, Filter()).ids == []
    assert idx.search_lexical("nothing", ["слово"], 5, Filter()).ids == []
    idx.replace_document(
        "c", "a", [row("a", 0, "текст про отпуск", title="Отпуск", meta={"department": "hr", "n": 3})]
    )
    idx.prepare("c")  # what ingestion calls at its end; searches answer the same after it
    ids = idx.search_dense("c", unit(0), 5, Filter()).ids
    assert idx.search_lexical("c", analyze("отпуск"), 5, Filter()).ids == ids
    hit = idx.fetch("c", [*ids, 10**12])[ids[0]]
    assert (
        hit.metadata == {"department": "hr", "n": 3}
        and hit.access_groups == ("public",)
        and hit.title == "Отпуск"
    )
    assert idx.fetch("c", [10**12]) == {}
    assert (
        idx.count("c", parse_filters(["department=hr"])) == 1
        and idx.count("c", parse_filters(["department=it"])) == 0
    )
    idx.drop("c")
    assert idx.count("c") == 0 and idx.fetch("c", ids) == {}
    assert idx.search_dense("c", unit(0), 5, Filter()).ids == []
    assert idx.search_lexical("c", analyze("отпуск"), 5, Filter()).ids == []
    idx.replace_document("c", "b", [row("b", 0, "после удаления индекс снова пишется")])  # usable after drop
    assert idx.count("c") == 1


def test_collections_are_isolated(backend):
    idx = backend.index
    idx.replace_document("one", "d", [row("d", 0, "общий текст про гарантию", v=unit(1))])
    idx.replace_document(
        "two", "d", [row("d", 0, "общий текст про гарантию", v=unit(1)), row("d", 1, "ещё", v=unit(2))]
    )
    assert idx.count("one") == 1 and idx.count("two") == 2
    one = idx.search_dense("one", unit(1), 10, Filter())
    two = idx.search_dense("two", unit(1), 10, Filter())
    assert set(one.ids).isdisjoint(two.ids) and one.content_stats.count == 1
    assert set(idx.search_lexical("one", analyze("гарантия"), 10, Filter()).ids) == set(one.ids)
    # (fetch takes internal ids, unique across collections; the embedded index ignores the
    # collection there, so cross-collection fetch is not part of the contract)
    idx.drop("one")
    assert idx.count("one") == 0 and idx.count("two") == 2


# ---- access groups and filters -------------------------------------------------------------------
GROUPS = {"pub": ("public",), "hr": ("hr",), "it": ("it",), "mgr": ("hr", "managers"), "none": ("secret",)}


def test_access_groups_are_enforced_inside_every_query(backend):
    idx = backend.index
    for name, groups in GROUPS.items():
        # every document is the best match for the query, so only the filter can keep it out
        idx.replace_document(
            "c",
            name,
            [
                row(
                    name,
                    0,
                    "зарплата и премия за квартал",
                    title="Премия",
                    groups=groups,
                    v=unit(3, noise=0.05, seed=len(name)),
                )
            ],
        )
    cases = {
        None: set(GROUPS),
        (): {"pub"},
        ("hr",): {"pub", "hr", "mgr"},
        ("it", "managers"): {"pub", "it", "mgr"},
        ("public",): {"pub"},
    }
    for groups, expected in cases.items():
        flt = Filter(groups=groups)
        dense = idx.search_dense("c", unit(3), 10, flt, include=list(range(1, 50)))
        lexical = idx.search_lexical("c", analyze("премия зарплата"), 10, flt)
        assert docs_of(idx, "c", dense.ids) == expected, (groups, "dense")
        assert docs_of(idx, "c", lexical.ids) == expected, (groups, "lexical")
        assert idx.count("c", flt) == len(expected) == dense.content_stats.count
        searcher = HybridSearcher(idx, StubEmbedder(), SearchSettings())
        hits = searcher.search("зарплата премия", collection="c", flt=flt, k=10, collapse=False).hits
        assert {h.doc_id for h in hits} == expected
        assert all(flt.allows_groups(h.access_groups) for h in hits)
        # the same text in every document: folded into one hit, which names only allowed copies
        (folded,) = searcher.search("зарплата премия", collection="c", flt=flt, k=10).hits
        assert {folded.doc_id, *folded.duplicates} == expected


VALUES = st.sampled_from(
    ["hr", "it", "faq", "policy", "1", "2", "10", "2.5", "2023-04-01", "2024-12-31", "Ёлка"]
)
FIELDS = st.sampled_from(["department", "doc_type", "version", "date", "tags"])
CONDITION = st.builds(
    lambda f, op, v, vs: Condition(f, op, tuple(vs) if op == "in" else v),
    FIELDS,
    st.sampled_from(["eq", "ne", "in", "gt", "gte", "lt", "lte"]),
    VALUES,
    st.lists(VALUES, min_size=1, max_size=3),
)
FILTER = st.builds(
    lambda cs, g: Filter(tuple(cs), None if g is None else tuple(sorted(set(g)))),
    st.lists(CONDITION, max_size=3),
    st.one_of(st.none(), st.lists(st.sampled_from(["hr", "it", "employees"]), max_size=2)),
)


@pytest.fixture(scope="module", params=BACKENDS)
def populated(request, tmp_path_factory, backend_opener):
    b = backend_opener(request.param, request, tmp_path_factory.mktemp(f"filters-{request.param}"), dim=DIM)
    rng = np.random.default_rng(0)
    pool = ["hr", "it", "faq", "policy", "1", "2", "10", "2.5", "2023-04-01", "2024-12-31", "Ёлка"]
    metas = []
    for i in range(80):
        meta: dict = {}
        for f in ["department", "doc_type", "version", "date", "tags"]:
            r = rng.random()
            if r < 0.45:
                meta[f] = pool[rng.integers(len(pool))]
            elif r < 0.6:
                meta[f] = [pool[j] for j in rng.integers(len(pool), size=2)]
        groups = tuple(
            sorted({["public", "hr", "it", "managers", "employees"][j] for j in rng.integers(5, size=2)})
        )
        v = rng.normal(size=DIM).astype(np.float32)
        b.index.replace_document(
            "c",
            f"d{i}",
            [
                row(
                    f"d{i}",
                    0,
                    f"документ номер {i} о политике",
                    meta=meta,
                    groups=groups,
                    v=v / np.linalg.norm(v),
                )
            ],
        )
        metas.append((meta, groups))
    yield b, metas
    b.close()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=FILTER)
def test_filters_match_python_semantics(populated, flt):
    b, metas = populated
    expected = {f"d{i}" for i, (m, g) in enumerate(metas) if flt.matches(m, g)}
    assert b.index.count("c", flt) == len(expected)
    dense = b.index.search_dense("c", unit(0), 100, flt)
    assert docs_of(b.index, "c", dense.ids) == expected
    lexical = b.index.search_lexical("c", analyze("документ политика"), 100, flt)
    assert docs_of(b.index, "c", lexical.ids) == expected


def test_filter_examples(populated):
    b, metas = populated
    for spec in (
        ["version>=10"],
        ["version<2"],
        ["date>=2024-01-01"],
        ["tags=Ёлка"],
        ["department!=hr"],
        ["doc_type=faq,policy", "version!=1"],
        ["date<2024"],
    ):
        flt = parse_filters(spec)
        assert b.index.count("c", flt) == sum(flt.matches(m, g) for m, g in metas), spec


def test_non_string_metadata_compares_as_its_string(backend):
    """``Filter.matches`` compares ``str(value)``: a JSON number 2 equals the filter value "2"."""
    idx = backend.index
    idx.replace_document("c", "a", [row("a", 0, "текст", meta={"version": 2, "draft": True, "score": 2.5})])
    idx.replace_document("c", "b", [row("b", 0, "текст", meta={"version": "10"})])
    for spec, n in (
        (["version=2"], 1),
        (["version>=2"], 2),
        (["draft=True"], 1),
        (["score>2"], 1),
        (["version!=2"], 1),
    ):
        assert idx.count("c", parse_filters(spec)) == n, spec
        assert len(idx.search_lexical("c", ["текст"], 5, parse_filters(spec)).ids) == n, spec


# ---- candidates and ranking ----------------------------------------------------------------------
def test_dense_candidates_contract(backend):
    idx = backend.index
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(30, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    tvecs = rng.normal(size=(30, DIM)).astype(np.float32)
    tvecs /= np.linalg.norm(tvecs, axis=1, keepdims=True)
    for i in range(30):
        idx.replace_document(
            "c",
            f"d{i}",
            [
                row(
                    f"d{i}",
                    0,
                    f"текст {i}",
                    title=f"Заголовок {i}",
                    v=vecs[i],
                    tv=tvecs[i],
                    groups=("public",) if i % 3 else ("hr",),
                )
            ],
        )
    q = vecs[7] * 0.6 + tvecs[11] * 0.4
    q /= np.linalg.norm(q)
    flt = Filter(groups=("it",))  # public only: 20 documents
    res = idx.search_dense("c", q, 3, flt, title_weight=1.0)
    allowed = [i for i in range(30) if i % 3]
    content, title = vecs[allowed] @ q, tvecs[allowed] @ q
    assert res.content_stats.count == 20
    assert res.content_stats.mean == pytest.approx(content.mean(), abs=1e-5)
    assert res.content_stats.std == pytest.approx(content.std(), abs=1e-5)
    assert res.title_stats.mean == pytest.approx(title.mean(), abs=1e-5)
    by_doc = {h.doc_id: i for i, h in idx.fetch("c", res.ids).items()}
    top_content = {f"d{allowed[j]}" for j in np.argsort(-content)[:3]}
    z = (content - content.mean()) / content.std() + (title - title.mean()) / title.std()
    top_combined = {f"d{allowed[j]}" for j in np.argsort(-z)[:3]}
    assert top_content | top_combined <= set(by_doc)
    for doc, cid in by_doc.items():  # both fields scored exactly for every candidate
        j = int(doc[1:])
        pos = res.ids.index(cid)
        assert res.content[pos] == pytest.approx(float(vecs[j] @ q), abs=1e-5)
        assert res.title[pos] == pytest.approx(float(tvecs[j] @ q), abs=1e-5)
    # include: exact scores for allowed ids another retriever found; disallowed ids never appear
    lex_ids = idx.search_lexical("c", analyze("текст"), 30, Filter()).ids
    res2 = idx.search_dense("c", q, 1, flt, include=lex_ids)
    docs2 = docs_of(idx, "c", res2.ids)
    assert docs2 == {f"d{i}" for i in allowed}


def test_lexical_bm25_prefers_rare_terms_and_title_matches(backend):
    idx = backend.index
    idx.replace_document(
        "c", "title", [row("title", 0, "общие сведения о компании", title="Гарантийный ремонт")]
    )
    idx.replace_document("c", "body", [row("body", 0, "ремонт выполняется по гарантии в сервисном центре")])
    for i in range(8):
        idx.replace_document("c", f"f{i}", [row(f"f{i}", 0, f"компания работает ежедневно, филиал {i}")])
    res = idx.search_lexical("c", analyze("гарантийный ремонт"), 10, Filter())
    ranked = [idx.fetch("c", [i])[i].doc_id for i in res.ids]
    assert ranked[0] == "title" and "body" in ranked and res.complete
    assert all(s > 0 for s in res.scores) and res.scores == sorted(res.scores, reverse=True)
    top1 = idx.search_lexical("c", analyze("компания"), 1, Filter())
    assert len(top1.ids) == 1 and not top1.complete


def test_fuzzy_expansion_finds_a_misspelt_term(backend):
    idx = backend.index
    idx.replace_document("c", "a", [row("a", 0, "подарочный сертификат действует год")])
    idx.replace_document("c", "b", [row("b", 0, "доставка по России")])
    assert docs_of(idx, "c", idx.search_lexical("c", analyze("сертефикат"), 5, Filter()).ids) == {"a"}
    assert idx.search_lexical("c", analyze("сертефикат"), 5, Filter(), fuzzy=False).ids == []


CORPUS = {
    "errors": (
        "Коды ошибок терминала",
        "Ошибка E-4012 означает, что терминал потерял связь с банком. Перезагрузите терминал.",
    ),
    "vacation": (
        "Отпуск",
        "Ежегодный оплачиваемый отпуск составляет 28 календарных дней, его можно делить на части.",
    ),
    "delivery": ("Доставка", "Курьер привозит заказ с 9 до 21 часа, стоимость зависит от региона."),
    "returns": ("Возврат товара", "Товар надлежащего качества можно вернуть в течение 30 дней."),
    "vpn": (
        "Удалённый доступ",
        "Для работы из дома установите клиент VPN и войдите корпоративной учётной записью.",
    ),
    "canteen": ("Столовая", "Столовая открыта с 12 до 16 часов на третьем этаже."),
}


def test_hybrid_ranking_finds_exact_phrases_and_meanings(backend):
    idx = backend.index
    for i, (doc, (title, text)) in enumerate(CORPUS.items()):
        idx.replace_document("kb", doc, [row(doc, 0, text, title=title, v=unit(i))])
    emb = StubEmbedder()
    searcher = HybridSearcher(idx, emb, SearchSettings())
    emb.next = unit(DIM - 1)  # a query vector unrelated to everything: the lexical signal decides
    assert searcher.search("что значит ошибка E-4012", collection="kb", k=3).hits[0].doc_id == "errors"
    emb.next = unit(4, noise=0.05, seed=99)  # «работа из дома» meaning, no shared words with the text
    top = searcher.search("как подключиться удалённо", collection="kb", k=3, mode="dense").hits
    assert top[0].doc_id == "vpn"
    emb.next = unit(1, noise=0.05, seed=7)
    hybrid = searcher.search("сколько дней отдыха положено", collection="kb", k=3).hits
    assert hybrid[0].doc_id == "vacation" and hybrid[0].signals["dense"] > 0.9
