"""Compare two evaluation runs: metric deltas, questions that got better or worse, and a release
gate that fails when a quality metric drops past its tolerance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spravka.evaluate.runner import EvalRun

#: quality metrics gated by default (higher is better)
DEFAULT_GATED = (
    "retrieval.hit@1", "retrieval.hit@5", "retrieval.mrr@10", "retrieval.ndcg@10",
    "answers.decision_accuracy", "answers.refusal_f1", "answers.answer_f1", "answers.citation_hit",
    "answers.groundedness", "answers.reference_recall",
)


def lower_is_better(metric: str) -> bool:
    return metric.endswith("_ms") or metric.endswith("cost_per_question") or metric.endswith("tokens_per_question")


@dataclass
class MetricDelta:
    metric: str
    a: float | None
    b: float | None
    delta: float | None
    gated: bool
    regressed: bool


@dataclass
class QuestionChange:
    id: str
    question: str
    what: str  # retrieval | decision | citation
    before: Any
    after: Any
    better: bool


@dataclass
class Comparison:
    deltas: list[MetricDelta]
    changes: list[QuestionChange] = field(default_factory=list)

    @property
    def regressions(self) -> list[MetricDelta]:
        return [d for d in self.deltas if d.regressed]

    @property
    def ok(self) -> bool:
        return not self.regressions

    @property
    def improved(self) -> list[QuestionChange]:
        return [c for c in self.changes if c.better]

    @property
    def worsened(self) -> list[QuestionChange]:
        return [c for c in self.changes if not c.better]


def _rank_key(rank: int | None) -> int:
    return rank if rank else 10_000


def compare_runs(a: EvalRun, b: EvalRun, *, tolerance: float = 0.02,
                 gated: tuple[str, ...] | None = None, tolerances: dict[str, float] | None = None) -> Comparison:
    """``b`` is the candidate, ``a`` the baseline. A gated metric regresses when it moves the wrong
    way by more than its tolerance (absolute, in the metric's own units)."""
    ma, mb = a.metrics(), b.metrics()
    gated = gated if gated is not None else DEFAULT_GATED
    tolerances = tolerances or {}
    deltas = []
    for metric in sorted(set(ma) | set(mb)):
        va, vb = ma.get(metric), mb.get(metric)
        delta = None if va is None or vb is None else round(vb - va, 4)
        is_gated = metric in gated
        tol = tolerances.get(metric, tolerance)
        worse = delta is not None and (delta > tol if lower_is_better(metric) else delta < -tol)
        deltas.append(MetricDelta(metric, va, vb, delta, is_gated, bool(is_gated and worse)))
    by_id = {q["id"]: q for q in a.questions}
    changes: list[QuestionChange] = []
    for qb in b.questions:
        qa = by_id.get(qb["id"])
        if qa is None:
            continue
        ra, rb = qa.get("first_rank"), qb.get("first_rank")
        if "first_rank" in qa and "first_rank" in qb and _rank_key(ra) != _rank_key(rb):
            changes.append(QuestionChange(qb["id"], qb["question"], "retrieval", ra, rb, _rank_key(rb) < _rank_key(ra)))
        aa, ab = qa.get("answer"), qb.get("answer")
        if aa and ab:
            if aa["correct_decision"] != ab["correct_decision"]:
                changes.append(QuestionChange(qb["id"], qb["question"], "decision", aa["status"], ab["status"],
                                              ab["correct_decision"]))
            if aa.get("cited_expected") is not None and ab.get("cited_expected") is not None \
                    and aa["cited_expected"] != ab["cited_expected"]:
                changes.append(QuestionChange(qb["id"], qb["question"], "citation", aa["cited_expected"],
                                              ab["cited_expected"], bool(ab["cited_expected"])))
    return Comparison(deltas, changes)
