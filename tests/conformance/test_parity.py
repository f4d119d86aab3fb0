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
