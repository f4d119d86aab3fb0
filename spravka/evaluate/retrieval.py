"""Retrieval metrics: hit@k, recall@k, MRR@10, nDCG@10 and latency, at document level.

Search returns chunks; a question is about documents, so hits are collapsed to the document
order they imply (first chunk wins). A deduplicated copy counts as its canonical document, and so
does a document the search folded into a hit as the same text (``Hit.duplicates``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spravka.core.types import Hit
from spravka.evaluate.golden import GoldenItem

KS = (1, 3, 5, 10)


@dataclass(slots=True)
class QuestionResult:
    id: str
    question: str
    expected: list[str]
    ranked_docs: list[str]
    first_rank: int | None
    latency_ms: float
    top_hits: list[dict[str, Any]] = field(default_factory=list)


def doc_ranking(doc_ids: Sequence[str], aliases: dict[str, str] | None = None) -> list[str]:
    out: list[str] = []
    for d in doc_ids:
        d = (aliases or {}).get(d, d)
        if d not in out:
            out.append(d)
    return out


def hit_ranking(hits: Sequence[Hit], aliases: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The document order ``hits`` imply, and the aliases to score it with: a document folded into
    a hit as the same text stands where that hit stands, like a deduplicated copy."""
    merged = dict(aliases or {})
    for h in hits:
        for d in h.duplicates:
            merged.setdefault(d, merged.get(h.doc_id, h.doc_id))
    return doc_ranking([h.doc_id for h in hits], merged), merged


def score_question(item: GoldenItem, ranked: list[str], latency_ms: float, aliases: dict[str, str]) -> QuestionResult:
    # in the same terms as ``ranked``: two expected copies of one text are one document to find
    expected = list(dict.fromkeys(aliases.get(e, e) for e in item.expected_sources))
    first = next((i + 1 for i, d in enumerate(ranked) if d in expected), None)
    return QuestionResult(item.id, item.question, expected, ranked[:10], first, latency_ms)


def summarize(results: list[QuestionResult]) -> dict[str, Any]:
    n = len(results)
    out: dict[str, Any] = {"n": n}
    if n == 0:
        return out | {f"hit@{k}": 0.0 for k in KS} | {"mrr@10": 0.0, "ndcg@10": 0.0, "p50_ms": 0.0, "p95_ms": 0.0}
    for k in KS:
        out[f"hit@{k}"] = round(sum(1 for r in results if r.first_rank and r.first_rank <= k) / n, 4)
    for k in (5, 10):
        out[f"recall@{k}"] = round(
            sum(len(set(r.ranked_docs[:k]) & set(r.expected)) / max(1, len(set(r.expected))) for r in results) / n, 4)
    out["mrr@10"] = round(sum(1 / r.first_rank for r in results if r.first_rank and r.first_rank <= 10) / n, 4)
    ndcg = 0.0
    for r in results:
        rel = set(r.expected)
        dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(r.ranked_docs[:10]) if d in rel)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(len(rel), 10)))
        ndcg += dcg / ideal if ideal else 0.0
    out["ndcg@10"] = round(ndcg / n, 4)
    lat = np.asarray([r.latency_ms for r in results])
    out["p50_ms"] = round(float(np.percentile(lat, 50)), 2)
    out["p95_ms"] = round(float(np.percentile(lat, 95)), 2)
    return out


def evaluate_retrieval(
    items: Sequence[GoldenItem],
    search: Callable[[GoldenItem], tuple[Sequence[Hit], float, list[dict[str, Any]]]],
    aliases: dict[str, str] | None = None,
    progress: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], list[QuestionResult]]:
    """Run ``search`` for every answerable item; it returns (its hits, ms, top hits as dicts)."""
    aliases = aliases or {}
    results = []
    for item in items:
        if not item.answerable:
            continue
        hits, ms, top = search(item)
        ranked, merged = hit_ranking(hits, aliases)
        r = score_question(item, ranked, ms, merged)
        r.top_hits = top
        results.append(r)
        if progress:
            progress()
    return summarize(results), results
