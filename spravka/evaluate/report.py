"""Self-contained HTML reports of evaluation runs (and of comparisons): inline SVG charts, no
external assets, so a report opens the same inside a closed perimeter and as a CI artefact."""

from __future__ import annotations

from html import escape
from typing import Any

from spravka.evaluate.charts import CHART_CSS, bar_chart, histogram
from spravka.evaluate.compare import Comparison
from spravka.evaluate.runner import EvalRun

_CSS = CHART_CSS + """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#111;background:#f8fafc}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:22px 0 8px}
.meta{color:#555;font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:8px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:8px 12px;min-width:120px}
.card b{display:block;font-size:18px} .card span{color:#555;font-size:12px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border:1px solid #e5e7eb;padding:5px 7px;vertical-align:top;text-align:left}
th{background:#f1f5f9} tr.fail td{background:#fef2f2} tr.ok td{background:#fff}
.bad{color:#b91c1c;font-weight:600} .good{color:#15803d;font-weight:600}
.small{font-size:12px;color:#444} .charts{display:flex;flex-wrap:wrap}
"""


def cards(title: str, metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return ""
    cells = "".join(
        f'<div class="card"><b>{escape(_v(v))}</b><span>{escape(k)}</span></div>'
        for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    )
    return f"<h2>{escape(title)}</h2><div class='cards'>{cells}</div>"


def page(title: str, meta: str, body: str, *, heading: str | None = None) -> str:
    """One self-contained report page: ``meta`` is escaped text, ``body`` is HTML, ``heading`` HTML."""
    return f"""<!doctype html><html lang="ru"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{heading or escape(title)}</h1><div class="meta">{escape(meta)}</div>
{body}
</body></html>"""


def _v(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def _failed(q: dict[str, Any]) -> bool:
    a = q.get("answer")
    if a and not a.get("correct_decision", True):
        return True
    if a and a.get("cited_expected") is False:
        return True
    return "first_rank" in q and (q["first_rank"] is None or q["first_rank"] > 5)


def _question_rows(run: EvalRun) -> str:
    rows = sorted(run.questions, key=lambda q: (not _failed(q), q["id"]))
    out = []
    for q in rows:
        a = q.get("answer") or {}
        rank = q.get("first_rank", "—") if not q.get("should_refuse") else "—"
        retrieved = "<br>".join(f"{escape(r['doc_id'])} <span class='small'>{r['score']}</span>"
                                for r in q.get("retrieved", [])[:3])
        decision = ""
        if a:
            cls = "good" if a.get("correct_decision") else "bad"
            decision = f"<span class='{cls}'>{escape(a['status'])}</span> ({a['confidence']:.2f})"
        cited = ", ".join(escape(d) for d in a.get("cited_docs", []))
        out.append(
            f"<tr class='{'fail' if _failed(q) else 'ok'}'><td>{escape(q['id'])}</td>"
            f"<td>{escape(q['question'])}<div class='small'>expected: "
            f"{escape(', '.join(q['expected_sources']) or ('refusal' if q['should_refuse'] else '—'))}</div></td>"
            f"<td>{rank if rank is not None else '<span class=bad>miss</span>'}</td><td>{retrieved}</td>"
            f"<td>{decision}<div class='small'>{escape(a.get('text', '')[:400])}</div>"
            f"<div class='small'>cited: {cited}</div></td></tr>"
        )
    return ("<table><tr><th>id</th><th>question</th><th>rank</th><th>retrieved (top 3)</th>"
            "<th>answer</th></tr>" + "".join(out) + "</table>")


def render_run(run: EvalRun, title: str = "Spravka evaluation") -> str:
    m = run.meta
    charts = []
    r = run.retrieval
    if r.get("n"):
        charts.append(bar_chart([(k, r.get(k, 0.0)) for k in ("hit@1", "hit@3", "hit@5", "hit@10", "mrr@10",
                                                             "ndcg@10")], title="Retrieval", max_value=1.0))
    answered = [q["answer"] for q in run.questions if q.get("answer")]
    if answered:
        thr = m.get("threshold") or 0.5
        charts.append(histogram(
            {"answerable": [a["confidence"] for q, a in zip(run.questions, answered, strict=False)
                            if not q["should_refuse"]],
             "unanswerable": [a["confidence"] for q, a in zip(run.questions, answered, strict=False)
                              if q["should_refuse"]]},
            title="Confidence by question kind", lo=0.0, hi=1.0, marker=thr, marker_label=f"threshold {thr:.2f}"))
        a = run.answers or {}
        charts.append(bar_chart([(k.replace("_", " "), a.get(k) or 0.0) for k in (
            "decision_accuracy", "refusal_f1", "answer_f1", "citation_hit", "groundedness", "reference_recall")],
            title="Answers", max_value=1.0, colour="#16a34a"))
        totals = [x["timings_ms"].get("total_ms", 0.0) for x in answered if x.get("timings_ms")]
        if totals:
            charts.append(histogram({"answer latency, ms": totals}, title="Latency per answer (ms)", bins=15))
        grounded = [x["groundedness"] for x in answered if x.get("groundedness") is not None]
        if grounded:
            charts.append(histogram({"answers": grounded}, title="Groundedness per answer", lo=0.0, hi=1.0, bins=10))
    meta = " · ".join(f"{k}: {v}" for k, v in m.items() if k in (
        "created_at", "collection", "golden", "questions", "embedder", "answer_mode", "llm_model", "threshold"))
    return page(title, meta, f"""<div class="charts">{''.join(charts)}</div>
{cards('Retrieval', run.retrieval)}{cards('Answers', run.answers)}{cards('Operations', run.operations)}
<h2>Questions (failures first)</h2>{_question_rows(run)}""")


def render_comparison(cmp: Comparison, a: EvalRun, b: EvalRun) -> str:
    rows = []
    for d in cmp.deltas:
        if d.delta is None:
            continue
        cls = "bad" if d.regressed else ("good" if d.gated and d.delta else "")
        rows.append(f"<tr><td>{escape(d.metric)}{' ⚑' if d.gated else ''}</td><td>{_v(d.a)}</td><td>{_v(d.b)}</td>"
                    f"<td class='{cls}'>{d.delta:+.4f}</td></tr>")
    gated = [(d.metric.split(".", 1)[1], d.delta) for d in cmp.deltas if d.gated and d.delta is not None]
    chart = bar_chart(gated, title="Δ gated metrics (B − A)",
                      max_value=max([abs(v) for _, v in gated] + [0.01])) if gated else ""
    changes = "".join(
        f"<tr class='{'ok' if c.better else 'fail'}'><td>{escape(c.id)}</td><td>{escape(c.question)}</td>"
        f"<td>{escape(c.what)}</td><td>{escape(str(c.before))} → {escape(str(c.after))}</td></tr>"
        for c in sorted(cmp.changes, key=lambda c: c.better))
    verdict = "<span class='good'>no regressions</span>" if cmp.ok else \
        f"<span class='bad'>{len(cmp.regressions)} regression(s)</span>"
    return page("Spravka comparison", f"A: {a.meta.get('created_at')} · B: {b.meta.get('created_at')}", f"""
<div class="charts">{chart}</div>
<h2>Metrics</h2><table><tr><th>metric</th><th>A</th><th>B</th><th>Δ</th></tr>{''.join(rows)}</table>
<h2>Questions that changed ({len(cmp.improved)} better, {len(cmp.worsened)} worse)</h2>
<table><tr><th>id</th><th>question</th><th>what</th><th>change</th></tr>{changes}</table>""",
                heading=f"Comparison: {verdict}")
