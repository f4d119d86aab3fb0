"""Retrieval metrics: hit@k, recall@k, MRR@10, nDCG@10 and latency, at document level.

Search returns chunks; a question is about documents, so hits are collapsed to the document
order they imply (first chunk wins). A deduplicated copy counts as its canonical document.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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


def score_question(item: GoldenItem, ranked: list[str], latency_ms: float, aliases: dict[str, str]) -> QuestionResult:
    expected = [aliases.get(e, e) for e in item.expected_sources]
    first = next((i + 1 for i, d in enumerate(ranked) if d in expected), None)
    return QuestionResult(item.id, item.question, item.expected_sources, ranked[:10], first, latency_ms)


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
    search: Callable[[GoldenItem], tuple[list[str], float, list[dict[str, Any]]]],
    aliases: dict[str, str] | None = None,
    progress: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], list[QuestionResult]]:
    """Run ``search`` for every answerable item; it returns (doc ids in hit order, ms, top hits)."""
    aliases = aliases or {}
    results = []
    for item in items:
        if not item.answerable:
            continue
        doc_ids, ms, top = search(item)
        r = score_question(item, doc_ranking(doc_ids, aliases), ms, aliases)
        r.top_hits = top
        results.append(r)
        if progress:
            progress()
    return summarize(results), results
