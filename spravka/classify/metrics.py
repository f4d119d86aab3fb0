"""Classification metrics: accuracy, macro-F1, per-class P/R/F1, confusion, coverage.

Macro-F1 averages over the classes that occur in the gold labels or the predictions (as
scikit-learn does), so a class the model never predicts counts as 0 rather than vanishing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None
              ) -> tuple[list[str], np.ndarray]:
    labels = list(labels) if labels is not None else sorted(set(gold) | set(pred))
    pos = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for g, p in zip(gold, pred, strict=True):
        m[pos[g], pos[p]] += 1
    return labels, m


def per_class(gold: Sequence[str], pred: Sequence[str]) -> dict[str, dict[str, float]]:
    labels, m = confusion(gold, pred)
    tp = np.diag(m).astype(float)
    support = m.sum(axis=1)
    predicted = m.sum(axis=0)
    out = {}
    for i, lab in enumerate(labels):
        p = tp[i] / predicted[i] if predicted[i] else 0.0
        r = tp[i] / support[i] if support[i] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        out[lab] = {"precision": p, "recall": r, "f1": f, "support": int(support[i])}
    return out


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    return float(np.mean([g == p for g, p in zip(gold, pred, strict=True)])) if gold else 0.0


def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    pc = per_class(gold, pred)
    return float(np.mean([v["f1"] for v in pc.values()])) if pc else 0.0


def accuracy_at_coverage(gold: Sequence[str], pred: Sequence[str], confidence: Sequence[float],
                         coverage: float) -> float:
    """Accuracy on the ``coverage`` share of items the model is most confident about."""
    n = len(gold)
    if not n:
        return 0.0
    keep = max(1, int(round(coverage * n)))
    order = np.argsort(-np.asarray(confidence), kind="stable")[:keep]
    return float(np.mean([gold[i] == pred[i] for i in order]))


def coverage_at_threshold(gold: Sequence[str], pred: Sequence[str], confidence: Sequence[float],
                          threshold: float) -> tuple[float, float]:
    """(share of items at or above ``threshold``, accuracy among them)."""
    sel = [i for i, c in enumerate(confidence) if c >= threshold]
    if not gold:
        return 0.0, 0.0
    acc = float(np.mean([gold[i] == pred[i] for i in sel])) if sel else 0.0
    return len(sel) / len(gold), acc


def expected_calibration_error(gold: Sequence[str], pred: Sequence[str], confidence: Sequence[float],
                               bins: int = 10) -> float:
    conf = np.asarray(confidence, dtype=float)
    correct = np.array([g == p for g, p in zip(gold, pred, strict=True)], dtype=float)
    if not len(conf):
        return 0.0
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def report(gold: Sequence[str], pred: Sequence[str], confidence: Sequence[float], threshold: float
           ) -> dict[str, Any]:
    """Everything ``spravka classify eval`` prints, as one JSON-ready dict."""
    cov, cov_acc = coverage_at_threshold(gold, pred, confidence, threshold)
    labels, m = confusion(gold, pred)
    return {
        "n": len(gold),
        "accuracy": round(accuracy(gold, pred), 4),
        "macro_f1": round(macro_f1(gold, pred), 4),
        "threshold": threshold,
        "coverage": round(cov, 4),
        "accuracy_covered": round(cov_acc, 4),
        "accuracy_at_80_coverage": round(accuracy_at_coverage(gold, pred, confidence, 0.8), 4),
        "ece": round(expected_calibration_error(gold, pred, confidence), 4),
        "per_class": {k: {kk: (round(vv, 4) if isinstance(vv, float) else vv) for kk, vv in v.items()}
                      for k, v in per_class(gold, pred).items()},
        "confusion": {"labels": labels, "matrix": m.tolist()},
    }
