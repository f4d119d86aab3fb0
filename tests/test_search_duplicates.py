"""The same passage filed twice (an FAQ entry under two topics, a policy copied into two
departments) takes one place in the results; the other copy is named on the hit."""

from __future__ import annotations

import json

import pytest

from spravka.core.filters import parse_filters
from spravka.core.text.normalize import passage_key
from spravka.core.types import Hit
from spravka.evaluate.golden import GoldenItem
from spravka.evaluate.retrieval import hit_ranking, score_question

ANSWER = "Вернуть товар надлежащего качества можно в течение 14 дней, сохранив чек и упаковку."
RECORDS = [
    {"id": "shop-returns", "title": "Как вернуть товар?", "text": ANSWER, "department": "shop"},
    # the same entry under another topic, typed with a Latin «c» and other punctuation
    {"id": "app-returns", "title": "Как вернуть товар", "text": ANSWER.replace("с", "c", 1).replace(",", " ,"),
     "department": "app"},
    # the same answer to another question is another passage
    {"id": "exchange", "title": "Как обменять товар?", "text": ANSWER, "department": "shop"},
    {"id": "delivery", "title": "Сколько стоит доставка?", "text": "Доставка по городу стоит 300 рублей.",
     "department": "shop"},
    {"id": "pickup", "title": "Сколько хранится заказ в пункте выдачи?", "text": "Заказ ждёт в пункте выдачи 7 дней.",
     "department": "shop"},
]


@pytest.fixture
def dup_app(fast_app, tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "faq.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in RECORDS), encoding="utf-8")
    report = fast_app.ingest(kb, "default")
    assert report.failed == 0 and report.duplicates == 0  # metadata differ: two documents, not one
    return fast_app


def test_passage_key_ignores_case_punctuation_and_look_alike_letters():
    assert passage_key("Как перенести видео c YouTube?", "") == passage_key("как перенести видео с Youtube", "")
    assert passage_key("Ёлка") == passage_key("елка")
    assert passage_key("Как вернуть товар?") != passage_key("Как обменять товар?")


def test_a_copy_of_the_same_passage_is_folded_into_the_better_hit(dup_app):
    hits = dup_app.search("как вернуть товар", k=4).hits
    ids = [h.doc_id for h in hits]
    shown = {"shop-returns", "app-returns"} & set(ids)
    assert len(shown) == 1, ids  # one place for the two copies
    first = next(h for h in hits if h.doc_id in shown)
    assert first.duplicates == list({"shop-returns", "app-returns"} - shown)
    assert "exchange" in ids  # same answer, another question: its own place
    assert len(ids) == len(set(ids)) == 4  # k distinct passages
    assert [h.rank for h in hits] == [1, 2, 3, 4]


def test_a_copy_below_the_last_place_is_named_too(dup_app):
    # «как обменять товар» puts the exchange entry first and the two return copies below it
    (top,) = dup_app.search("как обменять товар", k=1).hits
    assert top.doc_id == "exchange" and top.duplicates == []
    (hit,) = dup_app.search("как вернуть товар", k=1).hits
    assert {hit.doc_id, *hit.duplicates} == {"shop-returns", "app-returns"}


def test_without_collapse_both_copies_take_a_place(dup_app):
    hits = dup_app.searcher.search("как вернуть товар", collection="default", k=5, collapse=False).hits
    assert {"shop-returns", "app-returns"} <= {h.doc_id for h in hits}
    assert all(h.duplicates == [] for h in hits)


def test_a_filter_decides_before_folding(dup_app):
    hits = dup_app.search("как вернуть товар", k=5, flt=parse_filters(["department=app"])).hits
    assert [h.doc_id for h in hits] == ["app-returns"] and hits[0].duplicates == []


def test_a_folded_copy_counts_where_its_hit_stands():
    def hit(doc, dups=()):
        return Hit(chunk_id=f"{doc}#0", doc_id=doc, collection="c", text="", title="", heading="", score=0.0,
                   duplicates=list(dups))

    hits = [hit("a", ["b"]), hit("c")]
    ranked, aliases = hit_ranking(hits, {"z": "a"})
    assert ranked == ["a", "c"] and aliases == {"z": "a", "b": "a"}
    r = score_question(GoldenItem(id="1", question="q", expected_sources=["b"]), ranked, 0.0, aliases)
    assert r.first_rank == 1
    # both copies expected: one document to find, not two
    both = score_question(GoldenItem(id="2", question="q", expected_sources=["a", "b"]), ranked, 0.0, aliases)
    assert both.expected == ["a"]
    strict = score_question(GoldenItem(id="3", question="q", expected_sources=["b"]), ranked, 0.0, {})
    assert strict.first_rank is None


def test_the_api_and_the_console_name_the_folded_copy(dup_app):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from helpers import bearer

    from spravka.api import create_app

    key = dup_app.keys.create("dup-reader", "user")[0]
    admin = dup_app.keys.create("dup-admin", "admin")[0]
    with TestClient(create_app(dup_app, resume_jobs=False)) as client:
        r = client.post("/v1/search", json={"query": "как вернуть товар", "k": 3}, headers=bearer(key))
        assert client.post("/admin/login", data={"key": admin}, follow_redirects=False).status_code in (302, 303)
        page = client.get("/admin/documents", params={"q": "как вернуть товар"}).text
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    folded = [h for h in hits if h["duplicates"]]
    assert len(folded) == 1 and {folded[0]["doc_id"], *folded[0]["duplicates"]} == {"shop-returns", "app-returns"}
    assert f"тот же текст: {folded[0]['duplicates'][0]}" in page
