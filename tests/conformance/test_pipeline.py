"""End to end through the real pipeline: the sample knowledge base ingested into each backend,
then the golden questions searched with the real hybrid searcher. Vectors come from one
embedded run (USE, fast) and are copied into each backend's embedding cache first, so every
backend indexes identical vectors and the comparison isolates the storage layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from spravka.app import Spravka
from spravka.core.filters import parse_filters
from spravka.core.settings import Settings
from spravka.evaluate.golden import load_golden
from spravka.evaluate.retrieval import doc_ranking, score_question, summarize

BACKENDS = ["embedded", "postgres", "milvus"]


def golden_quality(app: Spravka, golden_path: Path) -> dict:
    results = []
    for item in load_golden(golden_path):
        if not item.answerable:
            continue
        flt = parse_filters(item.filters, item.groups)
        ranked = doc_ranking([h.doc_id for h in app.search(item.question, k=30, flt=flt).hits])
        results.append(score_question(item, ranked, 0.0, {}))
    return summarize(results)


@pytest.fixture(scope="module")
def embedded_kb(tmp_path_factory, sample_kb):
    app = Spravka(Settings(home=tmp_path_factory.mktemp("e2e-embedded"), embedder={"provider": "use"}))
    report = app.ingest(sample_kb, "default")
    assert report.failed == 0, report.failures
    yield app
    app.close()


def open_app(name: str, request, home: Path) -> tuple[Spravka, object]:
    url, cleanup = "sqlite", None
    if name == "postgres":
        url, cleanup = request.getfixturevalue("fresh_pg")()
    elif name == "milvus":
        request.getfixturevalue("milvus_client")  # skips (or fails in CI) when Milvus Lite is missing
        url = "milvus://" + str(home / "e2e-milvus.db")
    return Spravka(Settings(home=home, embedder={"provider": "use"}, store={"url": url})), cleanup


@pytest.mark.slow
@pytest.mark.backend
@pytest.mark.parametrize("name", BACKENDS)
def test_sample_kb_through_the_pipeline(name, request, tmp_path, embedded_kb, sample_kb, golden_path):
    app, cleanup = open_app(name, request, tmp_path / "home")
    try:
        src = embedded_kb.store
        rows = src.db.query("SELECT hash, vector FROM embeddings WHERE model=?", (embedded_kb.embedder.name,))
        import numpy as np

        app.store.put_vectors(
            embedded_kb.embedder.name, [(h, np.frombuffer(b, dtype=np.float32)) for h, b in rows]
        )
        report = app.ingest(sample_kb, "default")
        assert report.failed == 0 and report.embedded == 0, report  # every vector came from the cache
        assert app.index.count("default") == embedded_kb.index.count("default")
        again = app.ingest(sample_kb, "default")
        assert again.added == again.updated == 0  # idempotent on every backend

        for q in (
            "как сбросить пароль от учётки",
            "сколько стоит доставка во Владивосток",
            "do you ship to Kazakhstan",
        ):
            expected = embedded_kb.search(q, k=1).hits[0].doc_id
            assert expected in [h.doc_id for h in app.search(q, k=3).hits], q
        hr_only = app.search("возврат товара", k=10, flt=parse_filters(["department=hr"])).hits
        assert hr_only and all(h.metadata["department"] == "hr" for h in hr_only)
        old = {
            h.doc_id
            for h in app.search("срок возврата товара", k=10, flt=parse_filters(["date<2024-01-01"])).hits
        }
        assert old == {"customers/returns-policy-2023.md"}

        quality = golden_quality(app, golden_path)
        reference = golden_quality(embedded_kb, golden_path)
        assert quality["hit@5"] >= reference["hit@5"] - 0.04, (quality, reference)
        assert quality["mrr@10"] >= reference["mrr@10"] - 0.05, (quality, reference)
    finally:
        app.close()
        if cleanup:
            cleanup()
