"""The whole analysis for one period, as the CLI and the admin console need it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spravka.analytics.clusters import Cluster, question_clusters
from spravka.analytics.querylog import QueryRow, load_rows
from spravka.analytics.report import build_report


@dataclass
class Analysis:
    rows: list[QueryRow]
    clusters: list[Cluster]
    report: dict[str, Any]


def analyze(sp: Any, *, days: int | None = 30, collection: str | None = None, clusters: bool = True,
            top: int = 20) -> Analysis:
    """Rows of the query log, clusters of its unanswered or badly rated questions (embedded with
    the app's embedder) and the report figures."""
    rows = load_rows(sp.store, days=days, collection=collection)
    found: list[Cluster] = []
    if clusters and any(r.unanswered or r.badly_rated for r in rows):
        a = sp.settings.analytics
        found = question_clusters(rows, sp.embedder.embed_queries, threshold=a.cluster_threshold,
                                  max_rows=a.cluster_max, operator_answers=sp.escalations.operator_answers(), top=top)
    return Analysis(rows, found, build_report(rows, found, days=days))
