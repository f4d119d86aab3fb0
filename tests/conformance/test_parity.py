"""PostgreSQL's lexical search reproduces the embedded FTS5 BM25 score for score (same idf, k1, b,
column weights, avgdl); Milvus's own BM25 ranks the same documents first."""

from __future__ import annotations

import numpy as np
import pytest

from spravka.core.filters import Filter
from spravka.core.text.lemmas import analyze
from spravka.core.types import Chunk
from spravka.store.base import IndexRow

TEXTS = [
    (
        "Возврат товара",
        "Товар надлежащего качества можно вернуть в течение 30 дней, товар должен быть в упаковке.",
    ),
    (
        "Доставка",
        "Курьер доставит заказ, доставка по городу бесплатна от 3000 рублей, доставка в регионы платная.",
    ),
    ("Гарантия", "Гарантийный срок на технику один год; ремонт по гарантии в сервисном центре."),
    ("Оплата", "Оплатить заказ можно картой, наличными курьеру или подарочным сертификатом."),
    ("Обмен товара", "Обменять товар на другую модель можно в течение 14 дней при сохранении упаковки."),
    ("Сертификаты", "Подарочный сертификат действует год и не обменивается на деньги."),
] * 3
QUERIES = [
    "вернуть товар",
    "доставка курьером в регионы",
    "подарочный сертификат",
    "ремонт по гарантии",
    "обмен",
]


def fill(backend) -> None:
    rng = np.random.default_rng(0)
    for i, (title, text) in enumerate(TEXTS):
        v = rng.normal(size=16).astype(np.float32)
        v /= np.linalg.norm(v)
        chunk = Chunk(doc_id=f"d{i}", ord=0, text=text, title=title)
        row = IndexRow(
            chunk, v, v, f"h{i}", " ".join(analyze(title)), " ".join(analyze(text)), {}, ("public",)
        )
        backend.index.replace_document("c", f"d{i}", [row])


@pytest.mark.parametrize("other", ["postgres", "milvus"])
def test_lexical_scores_agree_with_the_embedded_index(other, request, tmp_path, backend_opener):
    emb = backend_opener("embedded", request, tmp_path / "e")
    oth = backend_opener(other, request, tmp_path / "o")
    try:
        fill(emb)
        fill(oth)
        for q in QUERIES:
            for boost in (1.0, 2.0):
                a = emb.index.search_lexical("c", analyze(q), 10, Filter(), title_boost=boost, fuzzy=False)
                b = oth.index.search_lexical("c", analyze(q), 10, Filter(), title_boost=boost, fuzzy=False)
                da = [emb.index.fetch("c", [i])[i].doc_id for i in a.ids]
                db = [oth.index.fetch("c", [i])[i].doc_id for i in b.ids]
                if other == "postgres":
                    sa, sb = dict(zip(da, a.scores, strict=True)), dict(zip(db, b.scores, strict=True))
                    assert sa.keys() == sb.keys(), q
                    assert [sb[d] for d in sa] == pytest.approx(list(sa.values()), rel=1e-6), q
                else:
                    assert set(da[:3]) & set(db[:3]) and sorted(da) == sorted(db), q
    finally:
        emb.close()
        oth.close()


def _put(idx, rng, doc: str, k: int) -> None:
    title, text = TEXTS[k % len(TEXTS)]
    v = rng.normal(size=16).astype(np.float32)
    v /= np.linalg.norm(v)
    row = IndexRow(Chunk(doc_id=doc, ord=0, text=text, title=title), v, v, f"h{doc}",
                   " ".join(analyze(title)), " ".join(analyze(text)),
                   {"department": "hr" if k % 2 else "it"}, ("public",) if k % 3 else ("hr",))
    idx.replace_document("c", doc, [row])


def _agree(idx, n: int = 100) -> None:
    """The in-memory ranking equals the SQL one, score for score, under every filter kind."""
    from spravka.core.filters import parse_filters

    for q in QUERIES:
        for flt in (Filter(), parse_filters(["department=hr"]), parse_filters([], ["hr"]), Filter(groups=())):
            idx.lexical_engine = "sql"
            every = idx.search_lexical("c", analyze(q), 1000, flt, fuzzy=False)
            top = idx.search_lexical("c", analyze(q), n, flt, fuzzy=False)
            idx.lexical_engine = "memory"
            mem = idx.search_lexical("c", analyze(q), n, flt, fuzzy=False)
            by_id = dict(zip(every.ids, every.scores, strict=True))
            # the same chunks score the same; equal scores may come in another order (SQL
            # sums per row in no fixed order, so its ties differ in the last bits)
            assert set(mem.ids) <= set(by_id) and mem.complete == top.complete, (q, flt)
            assert mem.scores == pytest.approx([by_id[i] for i in mem.ids], rel=1e-6), (q, flt)
            assert mem.scores == pytest.approx(top.scores, rel=1e-6), (q, flt)
            assert mem.scores == sorted(mem.scores, reverse=True), (q, flt)


def test_postgres_in_memory_bm25_equals_its_sql_through_changes_and_filters(request, tmp_path, backend_opener):
    """The default in-memory ranking and the SQL ranking agree score for score, with filters,
    after replaced and deleted documents, and when a smaller id commits after a larger one."""
    pg = backend_opener("postgres", request, tmp_path / "p")
    idx = pg.index
    rng = np.random.default_rng(1)
    try:
        for i in range(18):
            _put(idx, rng, f"d{i}", i)
        _agree(idx)
        _agree(idx, n=2)  # top-n cut and the filter checked slice by slice
        _put(idx, rng, "d3", 7)  # replaced
        idx.delete_documents("c", ["d4", "d5"])
        _agree(idx)
        # ids out of commit order: a chunk with a smaller id appears after a larger one was seen
        idx.db.execute("SELECT setval(pg_get_serial_sequence('chunks', 'id'), 1000)")
        _put(idx, rng, "late-high", 2)
        _agree(idx)
        idx.db.execute("SELECT setval(pg_get_serial_sequence('chunks', 'id'), 500)")
        _put(idx, rng, "late-low", 7)  # the delivery text again
        idx.lexical_engine = "memory"
        r = idx.search_lexical("c", analyze("доставка курьером"), 100, Filter(), fuzzy=False)
        assert "late-low" in {h.doc_id for h in idx.fetch("c", r.ids).values()}
        _agree(idx)
    finally:
        pg.close()


def test_postgres_bm25_is_saved_and_a_restarted_process_replays_changes(request, tmp_path, backend_opener, monkeypatch):
    """``prepare`` saves the in-memory BM25 index under the data directory; a new process loads it
    instead of reading every chunk's terms again, and replays what changed since."""
    from spravka.store.lexical import Bm25Index
    from spravka.store.postgres.index import PgSearchIndex

    pg = backend_opener("postgres", request, tmp_path / "p")
    idx = pg.index
    assert idx.cache_dir is not None and str(tmp_path) in str(idx.cache_dir)
    rng = np.random.default_rng(2)

    def restarted() -> PgSearchIndex:
        return PgSearchIndex(idx.db, idx.store, idx.dim, cache_dir=idx.cache_dir.parent)

    try:
        for i in range(12):
            _put(idx, rng, f"d{i}", i)
        idx.prepare("c")  # the end of an ingestion
        cid = idx.store.collection_id("c")
        assert (idx.cache_dir / f"c{cid}" / "bm25" / "state.json").is_file()
        with monkeypatch.context() as m:
            m.setattr(Bm25Index, "__init__", lambda *a, **k: pytest.fail("rebuilt although a saved index was there"))
            fresh = restarted()
            _agree(fresh)
            _put(idx, rng, "d3", 7)  # changes after the save: replayed, not rebuilt
            _put(idx, rng, "new", 1)
            idx.delete_documents("c", ["d5"])
            fresh = restarted()
            _agree(fresh)
            assert fresh.bm25(cid, 0).n_alive == 12
        idx.drop("c")  # the saved copy goes with the collection's rows
        assert not (idx.cache_dir / f"c{cid}").exists()
        _put(idx, rng, "after-drop", 4)
        _agree(restarted())
    finally:
        pg.close()
