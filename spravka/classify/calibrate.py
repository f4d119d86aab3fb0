"""Cross-validation folds, ensemble weights and temperature scaling on out-of-fold predictions.

Members' probabilities are pooled log-linearly (``Σ wₘ·log pₘ``) and divided by a temperature;
both the weights and the temperature are chosen to minimise the negative log-likelihood of
*out-of-fold* predictions, so the confidence that gates the triage queue means what it says
(a confidence of 0.8 is right about 80% of the time on data like the training set).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from spravka.classify.linear import softmax

EPS = 1e-6


def stratified_folds(y: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """A fold number per row; each class is dealt round-robin over the folds after a shuffle."""
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(y), dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        folds[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return folds


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], EPS, 1.0))))


def pool(members: Sequence[np.ndarray], weights: Sequence[float], temperature: float = 1.0) -> np.ndarray:
    z = sum(w * np.log(np.clip(p, EPS, 1.0)) for w, p in zip(weights, members, strict=True) if w)
    return softmax(np.asarray(z) / temperature)


def fit_temperature(members: Sequence[np.ndarray], weights: Sequence[float], y: np.ndarray) -> tuple[float, float]:
    """Golden-section search of log T in [-3, 3]; returns (T, nll)."""
    def loss(log_t: float) -> float:
        return nll(pool(members, weights, float(np.exp(log_t))), y)

    a, b = -3.0, 3.0
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = loss(c), loss(d)
    for _ in range(40):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = loss(d)
    log_t = (a + b) / 2
    return float(np.exp(log_t)), loss(log_t)


def fit_ensemble(members: Sequence[np.ndarray], y: np.ndarray, step: float = 0.1
                 ) -> tuple[list[float], float, float]:
    """Weights on a simplex grid and a temperature minimising out-of-fold NLL: (weights, T, nll)."""
    m = len(members)
    if m == 1:
        t, loss = fit_temperature(members, [1.0], y)
        return [1.0], t, loss
    ticks = np.round(np.arange(0, 1 + 1e-9, step), 6)
    best: tuple[float, list[float], float] | None = None
    for combo in itertools.product(ticks, repeat=m - 1):
        last = 1.0 - sum(combo)
        if last < -1e-9:
            continue
        weights = [*map(float, combo), max(0.0, float(last))]
        t, loss = fit_temperature(members, weights, y)
        if best is None or loss < best[0] - 1e-9:
            best = (loss, weights, t)
    assert best is not None
    return best[1], best[2], best[0]
