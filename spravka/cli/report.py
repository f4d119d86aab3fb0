"""``spravka report``: the query log's figures, CSV export, clusters of unanswered questions; ``purge``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from spravka.cli.base import app, console, out, print_json, state

report_app = typer.Typer(help="Reports over the query log (answers, feedback, escalations).")
app.add_typer(report_app, name="report")


@report_app.callback(invoke_without_command=True)
def report(
    ctx: typer.Context,
    days: int = typer.Option(30, "--days", help="The last N days (0 = the whole log)."),
    collection: str | None = typer.Option(None, "--collection", "-c", help="Only this collection."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Also write the query log as CSV to FILE."),
    json_out: bool = typer.Option(False, "--json", help="The report as JSON."),
    clusters: int = typer.Option(10, "--clusters", help="Top clusters of unanswered or badly rated questions."),
) -> None:
    """Answer, refusal and escalation rates over time, p50/p95 latency, cost per question,
    feedback, the cache, and the top clusters of questions the knowledge base failed on."""
    if ctx.invoked_subcommand is not None:
        return
    from spravka.analytics.report import write_csv
    from spravka.analytics.service import analyze

    sp = state.spravka()
    a = analyze(sp, days=days or None, collection=collection, clusters=clusters > 0, top=clusters)
    if csv_path is not None:
        n = write_csv(a.rows, csv_path)
        console.print(f"[green]wrote[/] {n} rows to {csv_path}")
    if json_out:
        print_json(a.report)
        return
    r = a.report
    out.print(f"[bold]{r['questions']}[/] questions in {f'the last {days} days' if days else 'the whole log'}: "
              f"answered {r['answered_rate']:.0%}, refused {r['refusal_rate']:.0%}, "
              f"escalated {r['escalation_rate']:.0%}")
    out.print(f"latency p50 {r['latency_ms']['p50']} ms, p95 {r['latency_ms']['p95']} ms · "
              f"cost per question {r['cost_per_question']} · tokens {r['tokens']} · LLM calls {r['llm_calls']}")
    out.print(f"feedback 👍 {r['feedback']['up']} 👎 {r['feedback']['down']} · cache hit rate "
              f"{r['cache']['hit_rate']:.0%} ({r['cache']['hits']} hits, {r['cache']['saved_llm_calls']} LLM calls saved)")
    if r["daily"]:
        t = Table(title="By day")
        for col in ("day", "questions", "answered", "refused", "escalated", "p50 ms", "p95 ms", "cost/q", "👍", "👎"):
            t.add_column(col)
        for d in r["daily"][-31:]:
            t.add_row(d["day"], str(d["questions"]), f"{d['answered_rate']:.0%}", f"{d['refused_rate']:.0%}",
                      f"{d['escalation_rate']:.0%}", str(d["p50_ms"]), str(d["p95_ms"]), str(d["cost_per_question"]),
                      str(d["up"]), str(d["down"]))
        out.print(t)
    if r["clusters"]:
        t = Table(title="Top clusters of unanswered or badly rated questions")
        for col in ("#", "count", "representative question", "why", "operator answer"):
            t.add_column(col)
        for i, c in enumerate(r["clusters"], 1):
            why = ", ".join(f"{k} {v}" for k, v in c["reasons"].items())
            t.add_row(str(i), str(c["count"]), escape(c["representative"][:100]), why,
                      "yes" if c["operator_answer"] else "")
        out.print(t)


@report_app.command("purge")
def purge(
    days: int | None = typer.Option(None, "--days", help="Keep this many days (default analytics.retention_days)."),
) -> None:
    """Delete query-log events (answers, searches, feedback, escalations) older than the retention."""
    sp = state.spravka()
    keep = sp.settings.analytics.retention_days if days is None else days
    if keep <= 0:
        console.print("retention is off (analytics.retention_days = 0): nothing purged")
        return
    n = sp.purge_events(keep)
    console.print(f"purged {n} query-log events older than {keep} days")
