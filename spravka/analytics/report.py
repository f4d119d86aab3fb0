"""Figures over query-log rows: decisions over time, latency, cost, feedback, the cache."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from spravka.analytics.clusters import Cluster
from spravka.analytics.querylog import QueryRow


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else 0.0


def build_report(rows: list[QueryRow], clusters: list[Cluster] | None = None, *, days: int | None = None
                 ) -> dict[str, Any]:
    n = len(rows)
    decisions = Counter(r.decision for r in rows)
    escalated = sum(r.escalated for r in rows)
    ratings = Counter(r.rating for r in rows if r.rating)
    lat = [r.latency_ms for r in rows if r.latency_ms]
    per_day: dict[str, list[QueryRow]] = defaultdict(list)
    for r in rows:
        per_day[r.day].append(r)
    daily = []
    for day in sorted(per_day):
        rs = per_day[day]
        k = len(rs)
        dl = [r.latency_ms for r in rs if r.latency_ms]
        daily.append({"day": day, "questions": k,
                      "answered_rate": round(sum(r.decision == "answered" for r in rs) / k, 4),
                      "refused_rate": round(sum(r.decision == "refused" for r in rs) / k, 4),
                      "escalation_rate": round(sum(r.escalated for r in rs) / k, 4),
                      "p50_ms": _pct(dl, 50), "p95_ms": _pct(dl, 95),
                      "cost_per_question": round(sum(r.cost for r in rs) / k, 6),
                      "up": sum(r.rating == "up" for r in rs), "down": sum(r.rating == "down" for r in rs),
                      "cache_hits": sum(r.cache == "hit" for r in rs)})
    cached = [r for r in rows if r.cache]
    return {
        "days": days, "questions": n,
        "first": rows[0].ts if rows else None, "last": rows[-1].ts if rows else None,
        "answered": decisions.get("answered", 0), "refused": decisions.get("refused", 0),
        "escalated": escalated,
        "answered_rate": round(decisions.get("answered", 0) / n, 4) if n else 0.0,
        "refusal_rate": round((decisions.get("refused", 0) + decisions.get("escalate", 0)) / n, 4) if n else 0.0,
        "escalation_rate": round(escalated / n, 4) if n else 0.0,
        "latency_ms": {"p50": _pct(lat, 50), "p95": _pct(lat, 95)},
        "tokens": sum(r.tokens for r in rows), "llm_calls": sum(r.llm_calls for r in rows),
        "cost": round(sum(r.cost for r in rows), 6),
        "cost_per_question": round(sum(r.cost for r in rows) / n, 6) if n else 0.0,
        "feedback": {"up": ratings.get("up", 0), "down": ratings.get("down", 0),
                     "rated_share": round(sum(ratings.values()) / n, 4) if n else 0.0},
        "cache": {"hits": sum(r.cache == "hit" for r in cached), "misses": sum(r.cache == "miss" for r in cached),
                  "hit_rate": round(sum(r.cache == "hit" for r in cached) / len(cached), 4) if cached else 0.0,
                  "saved_llm_calls": sum(r.saved_llm_calls for r in rows)},
        "channels": dict(Counter(r.channel or "-" for r in rows)),
        "daily": daily,
        "clusters": [c.public() for c in (clusters or [])],
    }


def charts(report: dict[str, Any]) -> dict[str, str]:
    """SVG charts of a report (no JS, no CDN)."""
    from spravka.evaluate.charts import bar_chart, line_chart

    daily = report["daily"]
    rates = {"ответы": [(d["day"][5:], d["answered_rate"]) for d in daily],
             "отказы": [(d["day"][5:], d["refused_rate"]) for d in daily],
             "эскалации": [(d["day"][5:], d["escalation_rate"]) for d in daily]}
    latency = {"p50, мс": [(d["day"][5:], d["p50_ms"]) for d in daily],
               "p95, мс": [(d["day"][5:], d["p95_ms"]) for d in daily]}
    out = {"rates": line_chart(rates, title="Доля ответов, отказов и эскалаций по дням", max_value=1.0),
           "latency": line_chart(latency, title="Задержка ответа по дням"),
           "cost": bar_chart([(d["day"][5:], d["cost_per_question"]) for d in daily][-14:],
                             title="Стоимость вопроса по дням")}
    if report["clusters"]:
        out["clusters"] = bar_chart([(f"#{i + 1}", c["count"]) for i, c in enumerate(report["clusters"][:12])],
                                    title="Кластеры вопросов без ответа", colour="#dc2626")
    return out


CSV_COLUMNS = ["ts", "answer_id", "collection", "channel", "role", "question", "decision", "confidence", "mode",
               "latency_ms", "tokens", "llm_calls", "cost", "cache", "rating", "escalated", "top_hit", "top_score"]


def write_csv(rows: list[QueryRow], out: Path | Any) -> int:
    """The query log as CSV (a path, or an open text stream)."""
    if isinstance(out, str | Path):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with Path(out).open("w", encoding="utf-8", newline="") as f:
            return write_csv(rows, f)
    w = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    w.writeheader()
    for r in rows:
        w.writerow(r.csv_row())
    return len(rows)
