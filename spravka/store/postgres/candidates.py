"""Backend-neutral helpers shared by the server backends (PostgreSQL and Milvus); numpy only.

Both backends find dense candidates with an ANN index on each vector field, score the union of
those candidates exactly on *both* fields, and then pick what the embedded index picks: the top
``n`` by content, the top ``n`` by the combined z-score, and the ``include`` ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spravka.store.base import DenseCandidates, ScoreStats

#: chunks whose scores estimate ScoreStats when the filter allows more (a fixed uniform sample)
STATS_SAMPLE = 2048


def filter_view(metadata: Mapping[str, Any]) -> dict[str, list[str]]:
    """Field → the strings a filter condition compares (``condition_matches``: ``str()`` of each
    value, list fields as lists; ``None`` and empty lists dropped, they match like absent)."""
    out: dict[str, list[str]] = {}
    for key, raw in metadata.items():
        values = [str(v) for v in raw] if isinstance(raw, list) else ([] if raw is None else [str(raw)])
        if values:
            out[str(key)] = values
    return out


def stats_of(scores: np.ndarray, count: int) -> ScoreStats:
    if scores.size == 0:
        return ScoreStats(0.0, 1.0, count)
    return ScoreStats(float(scores.mean()), float(scores.std()) or 1.0, count)


def select_dense(
    ids: Sequence[int],
    content: np.ndarray,
    title: np.ndarray,
    n: int,
    title_weight: float,
    cs: ScoreStats,
    ts: ScoreStats,
    include: Sequence[int] = (),
) -> DenseCandidates:
    """Top ``n`` by content ∪ top ``n`` by content+title z-score ∪ ``include`` (when present)."""
    if not len(ids):
        return DenseCandidates([], [], [], cs, ts)
    ids_arr = np.asarray(ids, dtype=np.int64)
    k = min(n, ids_arr.size)
    combined = (content - cs.mean) / cs.std + title_weight * (title - ts.mean) / ts.std
    picked = set(_top(content, k).tolist()) | set(_top(combined, k).tolist())
    if len(include):
        want = set(int(i) for i in include)
        picked |= {j for j, i in enumerate(ids_arr.tolist()) if i in want}
    order = sorted(picked)
    return DenseCandidates(
        ids=[int(ids_arr[j]) for j in order],
        content=[float(content[j]) for j in order],
        title=[float(title[j]) for j in order],
        content_stats=cs,
        title_stats=ts,
    )


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    if k >= scores.size:
        return np.arange(scores.size)
    return np.argpartition(-scores, k - 1)[:k]
