"""k nearest labelled examples by cosine similarity: works from a handful of examples per class,
and a new example (a correction) changes the answer at once, with no refit."""

from __future__ import annotations

import numpy as np


class KnnModel:
    """Class probability = softmax-weighted vote of the ``k`` most similar examples.

    ``temperature`` turns cosine differences into weights: e5 similarities of related requests sit
    within a few hundredths of each other, so a small temperature separates them.
    """

    def __init__(self, k: int = 10, temperature: float = 0.05, prior: float = 1e-3) -> None:
        self.k = k
        self.temperature = temperature
        self.prior = prior
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self.y = np.zeros(0, dtype=np.int64)
        self.n_classes = 0

    def fit(self, vectors: np.ndarray, y: np.ndarray, n_classes: int) -> KnnModel:
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.y = np.asarray(y, dtype=np.int64)
        self.n_classes = n_classes
        return self

    def add(self, vector: np.ndarray, label: int) -> None:
        self.vectors = np.vstack([self.vectors.reshape(-1, vector.shape[-1]), vector[None, :]]).astype(np.float32)
        self.y = np.append(self.y, label)

    def neighbours(self, queries: np.ndarray, k: int | None = None,
                   exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Indices and similarities of the nearest examples, best first (``exclude[i]``: a row
        index to skip for query ``i``, for leave-one-out)."""
        k = min(k or self.k, len(self.y) - (1 if exclude is not None else 0))
        n = queries.shape[0]
        if k <= 0 or n == 0:
            return np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0), dtype=np.float32)
        idx = np.zeros((n, k), dtype=np.int64)
        sims = np.zeros((n, k), dtype=np.float32)
        for a in range(0, n, 512):
            s = queries[a: a + 512].astype(np.float32) @ self.vectors.T
            if exclude is not None:
                s[np.arange(s.shape[0]), exclude[a: a + 512]] = -np.inf
            top = np.argpartition(-s, k - 1, axis=1)[:, :k]
            ts = np.take_along_axis(s, top, axis=1)
            order = np.argsort(-ts, axis=1)
            idx[a: a + 512] = np.take_along_axis(top, order, axis=1)
            sims[a: a + 512] = np.take_along_axis(ts, order, axis=1)
        return idx, sims

    def predict_proba(self, queries: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        n = queries.shape[0]
        probs = np.full((n, self.n_classes), self.prior)
        idx, sims = self.neighbours(queries, exclude=exclude)
        if idx.shape[1]:
            w = np.exp((sims - sims[:, :1]) / self.temperature)
            np.add.at(probs, (np.repeat(np.arange(n), idx.shape[1]), self.y[idx].ravel()), w.ravel())
        return probs / probs.sum(axis=1, keepdims=True)
