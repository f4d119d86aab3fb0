"""Clusters of questions by meaning: which unanswered or badly rated questions keep coming back.

Threshold clustering on normalised e5 question vectors in numpy (no sklearn): every question's
neighbours are those with cosine >= ``threshold``; questions with the most neighbours become
centres first and take their unassigned neighbours (the greedy "community detection" of
sentence-transformers). O(n²) memory and time: 2,000 questions take a few milliseconds.
The representative is the medoid (the member most similar to the rest).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spravka.analytics.querylog import QueryRow


@dataclass
class Cluster:
    id: str
    representative: str
    count: int
    examples: list[str]
    answer_ids: list[str]
    reasons: dict[str, int]
    collection: str = ""
    last_ts: str = ""
    operator_answer: dict[str, Any] | None = None
    members: list[QueryRow] = field(default_factory=list, repr=False)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "representative": self.representative, "count": self.count,
                "examples": self.examples, "reasons": self.reasons, "collection": self.collection,
                "last_ts": self.last_ts, "answer_ids": self.answer_ids[:50],
                "operator_answer": (self.operator_answer or {}).get("answer")}


def cluster_vectors(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Index groups, biggest first. ``vectors`` are L2-normalised rows."""
    n = len(vectors)
    if n == 0:
        return []
    sims = vectors @ vectors.T
    near = sims >= threshold
    order = np.argsort(-near.sum(axis=1), kind="stable")
    taken = np.zeros(n, dtype=bool)
    groups = []
    for i in order:
        if taken[i]:
            continue
        members = np.flatnonzero(near[i] & ~taken)
        taken[members] = True
        groups.append([int(m) for m in members])
    groups.sort(key=len, reverse=True)
    return groups


def _medoid(vectors: np.ndarray, idx: list[int]) -> int:
    if len(idx) <= 2:
        return idx[0]
    sub = vectors[idx]
    return idx[int(np.argmax((sub @ sub.T).sum(axis=1)))]


def question_clusters(rows: list[QueryRow], embed: Any, *, threshold: float = 0.9, max_rows: int = 2000,
                      operator_answers: dict[str, dict[str, Any]] | None = None,
                      top: int = 20) -> list[Cluster]:
    """Clusters of the unanswered (refused, escalated) and badly rated questions in ``rows``.
    ``embed(texts) -> matrix`` gives normalised question vectors."""
    bad = [r for r in rows if (r.unanswered or r.badly_rated) and r.normalized][-max_rows:]
    if not bad:
        return []
    # one vector per distinct question (the cache key collapses case and punctuation); the text
    # embedded is the question as asked, which the embedder was trained on
    first: dict[str, str] = {}
    for r in bad:
        first.setdefault(r.normalized, r.question)
    texts = list(first)
    vecs = np.asarray(embed([first[t] for t in texts]), dtype=np.float32)
    pos = {t: i for i, t in enumerate(texts)}
    by_text: dict[int, list[QueryRow]] = {}
    for r in bad:
        by_text.setdefault(pos[r.normalized], []).append(r)
    ops = operator_answers or {}
    out = []
    for idx in cluster_vectors(vecs, threshold):
        members = [r for i in idx for r in by_text[i]]
        rep = by_text[_medoid(vecs, idx)][0]
        ids = sorted(r.answer_id for r in members)
        reasons = Counter("rated_down" if r.badly_rated and not r.unanswered else r.decision for r in members)
        op = next((ops[a] for a in ids if a in ops), None)
        examples = list(dict.fromkeys(r.question for r in sorted(members, key=lambda r: r.ts, reverse=True)))[:5]
        out.append(Cluster(id=hashlib.sha256(" ".join(ids).encode()).hexdigest()[:12], representative=rep.question,
                           count=len(members), examples=examples, answer_ids=ids, reasons=dict(reasons),
                           collection=Counter(r.collection for r in members).most_common(1)[0][0],
                           last_ts=max(r.ts for r in members), operator_answer=op, members=members))
    out.sort(key=lambda c: (-c.count, c.representative))
    return out[:top]
