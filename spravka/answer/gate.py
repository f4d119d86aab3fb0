"""The confidence gate: does the knowledge base hold the answer at all?

A logistic model over retrieval signals gives a probability in [0, 1]; below the collection's
threshold the assistant refuses (or escalates) instead of answering from the nearest, wrong
document. Retrieval scores alone do not say this: a fused score is relative to the query, and
a question about «постамат» scores high on the FAQ entry about pickup points. So the model also
looks at which question words the best chunks contain, and which no readable chunk contains.

Features (of the top hit unless said otherwise):

* ``score``: the fused hybrid score (sum of weighted z-scores);
* ``dense``: cosine of the question and the chunk vector;
* ``lexical``: log(1 + BM25);
* ``margin``: fused score of the top document minus that of the next different document;
* ``coverage``: IDF-weighted share of the question's content words in the top three chunks;
* ``oov``: share of the question's content words that no chunk the asker may read contains;
* ``rerank`` (only with a reranker): the best relevance probability, added as log-odds.

The coefficients are frozen below; ``python -m bench.answers --fit-gate`` refits them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from spravka.answer.terms import QuestionTerms
from spravka.core.text.lemmas import analyze
from spravka.core.types import Hit

FEATURES = ("score", "dense", "lexical", "margin", "coverage", "oov")


@dataclass(frozen=True, slots=True)
class GateFeatures:
    score: float = 0.0
    dense: float = 0.0
    lexical: float = 0.0
    margin: float = 0.0
    coverage: float = 0.0
    oov: float = 0.0
    #: best rerank relevance in [0, 1], when a reranker ran
    rerank: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def chunk_lemmas(hit: Hit) -> set[str]:
    return set(analyze(f"{hit.title}\n{hit.heading}\n{hit.text}"))


def gate_features(
    hits: Sequence[Hit], terms: QuestionTerms, rerank: float | None = None, top_chunks: int = 3
) -> GateFeatures:
    """Features of one retrieval result (``hits`` ranked best first)."""
    if not hits:
        return GateFeatures(oov=terms.oov, rerank=rerank)
    top = hits[0]
    s = top.signals
    other = next((h for h in hits if h.doc_id != top.doc_id), None)
    lemmas: set[str] = set()
    for h in hits[:top_chunks]:
        lemmas |= chunk_lemmas(h)
    return GateFeatures(
        score=float(top.score),
        dense=float(s.get("dense", 0.0)),
        lexical=math.log1p(max(0.0, float(s.get("lexical", 0.0)))),
        margin=float(top.score - other.score) if other is not None else float(top.score),
        coverage=terms.coverage(lemmas),
        oov=terms.oov,
        rerank=rerank,
    )


@dataclass(frozen=True)
class ConfidenceGate:
    """``p = sigmoid(intercept + Σ w·feature [+ rerank_weight·logit(rerank) + rerank_bias])``."""

    intercept: float
    weights: Mapping[str, float]
    rerank_weight: float = 1.0
    rerank_bias: float = 0.0
    #: how the coefficients were obtained (shown in logs and ``--fit-gate`` output)
    source: str = ""
    extra: Mapping[str, float] = field(default_factory=dict)

    def logit(self, f: GateFeatures) -> float:
        z = self.intercept + sum(w * float(getattr(f, name)) for name, w in self.weights.items())
        if f.rerank is not None:
            r = min(max(f.rerank, 1e-4), 1 - 1e-4)
            z += self.rerank_weight * math.log(r / (1 - r)) + self.rerank_bias
        return z

    def probability(self, f: GateFeatures) -> float:
        z = self.logit(f)
        return 1.0 / (1.0 + math.exp(-z)) if z > -500 else 0.0


# Fitted with ``python -m bench.answers --systems "" --fit-gate`` on samples/golden/kb.jsonl (85
# questions: 56 answerable = 1, 29 should_refuse = 0) over the sample KB indexed with
# multilingual-e5-small and the default search settings (k=8): L2-regularised logistic regression
# (λ=3 on standardised features, Newton's method), mapped back to raw feature units and frozen
# here. Leave-one-out on the same set: AUC 0.82, refusal precision 0.65 / recall 0.52 at p < 0.5.
# Retrieval signals depend on the embedder and the corpus: after changing either, refit, or at
# least recalibrate the threshold (collection setting ``answer_threshold``).
# The rerank terms were not fitted (no reranker in the default setup): the reranker's log-odds
# are added as independent evidence, which assumes a reranker calibrated around 0.5.
DEFAULT_GATE = ConfidenceGate(
    intercept=-18.39,
    weights={
        "score": 0.113,
        "dense": 18.971,
        "lexical": 0.681,
        "margin": 0.022,
        "coverage": 1.337,
        "oov": -1.736,
    },
    rerank_weight=1.0,
    rerank_bias=0.0,
    source="logistic fit on samples/golden/kb.jsonl (e5-small), see spravka/answer/gate.py",
)


def fit_gate(
    rows: Sequence[GateFeatures], labels: Sequence[int], l2: float = 3.0, features: Sequence[str] = FEATURES
) -> ConfidenceGate:
    """L2-regularised logistic regression on standardised features, returned in raw units.

    Small on purpose (numpy only): golden sets have tens of questions, where a regularised linear
    model is about all the data supports.
    """
    X = np.array([[float(getattr(r, f)) for f in features] for r in rows], dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    w = _logistic(X, y, l2)
    mu, sd = X.mean(0), X.std(0)
    sd[sd == 0] = 1.0
    raw = w[1:] / sd
    return ConfidenceGate(
        intercept=round(float(w[0] - np.sum(w[1:] * mu / sd)), 3),
        weights={f: round(float(v), 3) for f, v in zip(features, raw, strict=True)},
        source=f"fit_gate on {len(rows)} questions, l2={l2}",
    )


def _logistic(X: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    mu, sd = X.mean(0), X.std(0)
    sd[sd == 0] = 1.0
    Z = np.c_[np.ones(len(X)), (X - mu) / sd]
    w = np.zeros(Z.shape[1])
    reg = np.eye(Z.shape[1]) * l2
    reg[0, 0] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(Z @ w)))
        grad = Z.T @ (p - y) + reg @ w
        hess = (Z.T * (p * (1 - p))) @ Z + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w
