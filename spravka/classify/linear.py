"""Multinomial logistic regression in numpy (L-BFGS), over dense and sparse features together.

Why not scikit-learn: the problem is small (hundreds to tens of thousands of examples, a 384-d
embedding plus an optional sparse TF-IDF block) and this is the only model the classifier needs.
Forty lines of L-BFGS keep the core install light (numpy only) and the fitted model a plain
``.npz``: no pickles to load from the data directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from spravka.classify.features import Csr


@dataclass
class Design:
    """Rows of features: a dense block (embeddings) beside a sparse block (TF-IDF), either optional."""

    dense: np.ndarray | None = None
    sparse: Csr | None = None
    _sparse_t: Csr | None = None

    @property
    def n(self) -> int:
        return self.dense.shape[0] if self.dense is not None else self.sparse.n_rows  # type: ignore[union-attr]

    @property
    def n_dense(self) -> int:
        return self.dense.shape[1] if self.dense is not None else 0

    @property
    def dim(self) -> int:
        return self.n_dense + (self.sparse.n_cols if self.sparse is not None else 0)

    def dot(self, w: np.ndarray) -> np.ndarray:
        out = np.zeros((self.n, w.shape[1]))
        if self.dense is not None:
            # float32 embeddings stay float32 (half the memory traffic); the sums are float64
            out += self.dense @ w[: self.n_dense].astype(self.dense.dtype, copy=False)
        if self.sparse is not None:
            out += self.sparse.dot(w[self.n_dense:])
        return out

    def tdot(self, g: np.ndarray) -> np.ndarray:
        parts = []
        if self.dense is not None:
            parts.append((self.dense.T @ g.astype(self.dense.dtype, copy=False)).astype(np.float64))
        if self.sparse is not None:
            if self._sparse_t is None:
                self._sparse_t = self.sparse.transpose()
            parts.append(self._sparse_t.dot(g))
        return np.vstack(parts)

    def rows(self, idx: np.ndarray) -> Design:
        return Design(self.dense[idx] if self.dense is not None else None,
                      self.sparse.rows(idx) if self.sparse is not None else None)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def lbfgs(fg: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *, max_iter: int = 300,
          tol: float = 1e-7, memory: int = 10) -> np.ndarray:
    """Minimise a smooth convex ``f`` given ``fg(x) -> (f, grad)``: L-BFGS with Armijo backtracking."""
    x = x0
    f, g = fg(x)
    hist: list[tuple[np.ndarray, np.ndarray, float]] = []
    for _ in range(max_iter):
        q = g.copy()
        alphas = []
        for s, y, rho in reversed(hist):
            a = rho * float(s @ q)
            q -= a * y
            alphas.append(a)
        if hist:
            s, y, _ = hist[-1]
            q *= float(s @ y) / float(y @ y)
        else:
            q /= max(1.0, float(np.linalg.norm(g)))
        for (s, y, rho), a in zip(hist, reversed(alphas), strict=True):
            q += s * (a - rho * float(y @ q))
        d = -q
        gd = float(g @ d)
        if gd >= 0:  # not a descent direction: restart from the gradient
            hist.clear()
            d, gd = -g, -float(g @ g)
        step = 1.0
        while True:
            xn = x + step * d
            fn, gn = fg(xn)
            if fn <= f + 1e-4 * step * gd or step < 1e-10:
                break
            step *= 0.5
        s, y = xn - x, gn - g
        sy = float(s @ y)
        if sy > 1e-12:
            hist.append((s, y, 1.0 / sy))
            del hist[:-memory]
        done = abs(f - fn) <= tol * max(1.0, abs(f))
        x, f, g = xn, fn, gn
        if done or float(np.abs(g).max()) < 1e-6:
            break
    return x


class LogisticRegression:
    """Softmax regression with an L2 penalty ``l2/2·|W|²`` on the mean (weighted) cross-entropy.

    ``balanced`` weighs each class inversely to its frequency, so a rare class is not drowned.
    """

    def __init__(self, l2: float = 1e-3, *, balanced: bool = False, max_iter: int = 300) -> None:
        self.l2 = l2
        self.balanced = balanced
        self.max_iter = max_iter
        self.coef = np.zeros((0, 0))
        self.intercept = np.zeros(0)

    def fit(self, x: Design, y: np.ndarray, n_classes: int) -> LogisticRegression:
        n, dim = x.n, x.dim
        onehot = np.zeros((n, n_classes))
        onehot[np.arange(n), y] = 1.0
        weights = np.ones(n)
        if self.balanced:
            counts = np.bincount(y, minlength=n_classes).astype(float)
            weights = (n / (n_classes * np.maximum(counts, 1.0)))[y]
        weights /= weights.sum()

        def fg(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w = theta[: dim * n_classes].reshape(dim, n_classes)
            b = theta[dim * n_classes:]
            z = x.dot(w) + b
            z -= z.max(axis=1, keepdims=True)
            logsum = np.log(np.exp(z).sum(axis=1))
            loss = float(weights @ (logsum - (z * onehot).sum(axis=1))) + 0.5 * self.l2 * float((w * w).sum())
            p = np.exp(z - logsum[:, None])
            g = (p - onehot) * weights[:, None]
            gw = x.tdot(g) + self.l2 * w
            return loss, np.concatenate([gw.ravel(), g.sum(axis=0)])

        theta = lbfgs(fg, np.zeros(dim * n_classes + n_classes), max_iter=self.max_iter)
        self.coef = theta[: dim * n_classes].reshape(dim, n_classes)
        self.intercept = theta[dim * n_classes:]
        return self

    def decision(self, x: Design) -> np.ndarray:
        return x.dot(self.coef) + self.intercept

    def predict_proba(self, x: Design) -> np.ndarray:
        return softmax(self.decision(x))
