"""Pick the confidence-gate threshold from a golden set.

Two objectives: the best macro-F1 of the answer-vs-refuse decision (both classes count), or the
lowest threshold that keeps *answer precision* at a target (as many answers as possible while
at most 1 in 10, say, is given where the knowledge base had nothing).

A threshold chosen on a golden set looks better on that set than it will on new questions.
:func:`cross_validate` says by how much: each fold's questions are decided by a threshold chosen
on the other folds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from spravka.classify.calibrate import stratified_folds
from spravka.evaluate.answers import f1


@dataclass
class DecisionStats:
    threshold: float
    answer_precision: float
    answer_recall: float
    refusal_precision: float
    refusal_recall: float

    @property
    def answer_f1(self) -> float:
        return f1(self.answer_precision, self.answer_recall)

    @property
    def refusal_f1(self) -> float:
        return f1(self.refusal_precision, self.refusal_recall)

    @property
    def macro_f1(self) -> float:
        return round((self.answer_f1 + self.refusal_f1) / 2, 4)


@dataclass
class Calibration:
    threshold: float
    objective: str
    chosen: DecisionStats
    baseline: DecisionStats
    curve: list[DecisionStats] = field(default_factory=list)


def decide(points: Sequence[tuple[float, bool]], threshold: float) -> DecisionStats:
    """``points`` are (confidence, should_refuse); an answer is given when confidence >= threshold."""
    return _stats([(c >= threshold, r) for c, r in points], threshold)


def _stats(decisions: Sequence[tuple[bool, bool]], threshold: float) -> DecisionStats:
    """Precision and recall of both classes from (answered, should_refuse) pairs."""
    tp_a = sum(1 for a, r in decisions if a and not r)
    fp_a = sum(1 for a, r in decisions if a and r)
    fn_a = sum(1 for a, r in decisions if not a and not r)
    tp_r = sum(1 for a, r in decisions if not a and r)
    ap = tp_a / (tp_a + fp_a) if tp_a + fp_a else 1.0
    ar = tp_a / (tp_a + fn_a) if tp_a + fn_a else 0.0
    rp = tp_r / (tp_r + fn_a) if tp_r + fn_a else 1.0
    rr = tp_r / (tp_r + fp_a) if tp_r + fp_a else 0.0
    return DecisionStats(round(threshold, 4), round(ap, 4), round(ar, 4), round(rp, 4), round(rr, 4))


def calibrate(points: Sequence[tuple[float, bool]], *, current: float,
              target_precision: float | None = None) -> Calibration:
    if not points:
        raise ValueError("no golden questions to calibrate on")
    confidences = sorted({round(c, 4) for c, _ in points})
    # candidate thresholds: between neighbouring confidences, so each is a distinct decision
    cands = sorted({0.0, 1.0, *[(a + b) / 2 for a, b in zip(confidences, confidences[1:], strict=False)]})
    curve = [decide(points, t) for t in cands]
    baseline = decide(points, current)
    if target_precision is not None:
        ok = [s for s in curve if s.answer_precision >= target_precision and s.answer_recall > 0]
        chosen = min(ok, key=lambda s: s.threshold) if ok else max(curve, key=lambda s: s.answer_precision)
        objective = f"answer precision >= {target_precision}"
    else:
        best = max(s.macro_f1 for s in curve)
        # among equally good thresholds, the middle one is the most robust
        tied = [s for s in curve if s.macro_f1 == best]
        chosen = tied[len(tied) // 2]
        objective = "best macro-F1 of answer vs refuse"
    return Calibration(chosen.threshold, objective, chosen, baseline, curve)


def cross_validate(points: Sequence[tuple[float, bool]], *, current: float, target_precision: float | None = None,
                   folds: int = 5, seed: int = 0) -> DecisionStats | None:
    """Held-out figures for :func:`calibrate`: the golden questions are dealt into ``folds``
    stratified folds, each fold is decided by the threshold calibrated on the others, and the
    decisions of all folds are scored together. ``threshold`` in the result is the mean of the
    fold thresholds. None when either class has fewer than two questions."""
    labels = np.asarray([int(r) for _, r in points])
    k = min(folds, int(labels.sum()), int(len(labels) - labels.sum()))
    if k < 2:
        return None
    fold = stratified_folds(labels, k, seed=seed)
    decisions: list[tuple[bool, bool]] = []
    thresholds = []
    for f in range(k):
        train = [p for p, g in zip(points, fold, strict=True) if g != f]
        t = calibrate(train, current=current, target_precision=target_precision).threshold
        thresholds.append(t)
        decisions += [(c >= t, r) for (c, r), g in zip(points, fold, strict=True) if g == f]
    return _stats(decisions, float(np.mean(thresholds)))
