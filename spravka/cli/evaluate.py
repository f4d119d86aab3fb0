"""``spravka eval``: measure the knowledge base and the assistant on golden sets."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import typer
from rich.progress import Progress
from rich.table import Table

from spravka.cli.base import app, console, out, print_json, state
from spravka.core.filters import parse_filters
from spravka.core.types import DocStatus
from spravka.evaluate.golden import GoldenItem, load_golden
from spravka.evaluate.retrieval import evaluate_retrieval

eval_app = typer.Typer(help="Evaluate on golden sets: retrieval, answers, texts, extraction; reports, compare, calibrate.",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")

GoldenOpt = typer.Option(..., "--golden", "-g", help="Golden set JSONL.")
CollectionOpt = typer.Option(None, "--collection", "-c")


def _metric_table(title: str, metrics: dict) -> Table:
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, int | float | str) and key not in ("collection", "mode"):
            t.add_row(key, str(value))
    return t


@eval_app.command("retrieval")
def eval_retrieval(
    golden: Path = GoldenOpt,
    collection: str | None = CollectionOpt,
    k: int = typer.Option(10, "--k"),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, dense or lexical."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object with the metrics."),
    details: bool = typer.Option(False, "--details", help="With --json: include per-question results."),
) -> None:
    """hit@1/3/5/10, recall, MRR@10, nDCG@10 and latency on the answerable golden questions."""
    sp = state.spravka()
    name = collection or sp.settings.collection
    sp.check_collection(name)
    items = load_golden(golden)
    aliases = {d.id: d.duplicate_of for d in sp.store.list_documents(name, DocStatus.DUPLICATE) if d.duplicate_of}

    def run(item: GoldenItem):
        flt = parse_filters(item.filters, item.groups)
        t = time.perf_counter()
        result = sp.searcher.search(item.question, collection=name, flt=flt, k=k * 3, mode=mode)
        ms = (time.perf_counter() - t) * 1000
        top = [{"doc_id": h.doc_id, "chunk_id": h.chunk_id, "score": round(h.score, 4)} for h in result.hits[:5]]
        return result.hits, ms, top

    sp.embedder.embed_query("прогрев модели")  # load the model before timing
    answerable = sum(1 for i in items if i.answerable)
    with Progress(console=console, disable=json_out) as bar:
        task = bar.add_task("questions", total=answerable)
        summary, results = evaluate_retrieval(items, run, aliases, progress=lambda: bar.advance(task))
    summary = {"collection": name, "mode": mode, **summary}
    if json_out:
        print_json(summary | ({"questions": results} if details else {}))
        return
    out.print(_metric_table(f"retrieval on {golden.name} ({summary['n']} answerable questions)", summary))
    misses = [r for r in results if not r.first_rank or r.first_rank > 5]
    if misses:
        m = Table(title="not in the top 5")
        for col in ("id", "question", "expected", "got"):
            m.add_column(col, overflow="fold")
        for r in misses[:20]:
            m.add_row(r.id, r.question[:80], ", ".join(r.expected), ", ".join(r.ranked_docs[:3]))
        out.print(m)


@eval_app.command("run")
def eval_run(
    golden: Path = GoldenOpt,
    collection: str | None = CollectionOpt,
    mode: str | None = typer.Option(None, "--mode", help="Answer mode: auto, extractive or generative."),
    answers: bool = typer.Option(True, "--answers/--no-answers", help="Also run the answer pipeline."),
    judge: bool = typer.Option(False, "--judge", help="Add an LLM judge of answer vs reference (slow)."),
    save: Path | None = typer.Option(None, "--out", "-o", help="Where to save the run JSON."),
    html: Path | None = typer.Option(None, "--html", help="Write an HTML report with charts."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object."),
) -> None:
    """Retrieval, answers (refusals, citations, groundedness, similarity) and operations in one run."""
    from spravka.evaluate.judge import make_judge
    from spravka.evaluate.report import render_run
    from spravka.evaluate.runner import run_eval

    sp = state.spravka()
    name = collection or sp.settings.collection
    items = load_golden(golden)
    with Progress(console=console, disable=json_out) as bar:
        task = bar.add_task("questions", total=len(items))
        run = run_eval(sp, items, collection=name, golden_path=golden, answers=answers, mode=mode,
                       judge=make_judge(sp) if judge else None, progress=lambda: bar.advance(task))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = run.save(save or sp.home / "eval" / f"{stamp}-{name}.json")
    if html:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_run(run), encoding="utf-8")
    if json_out:
        print_json({"run": str(path), "retrieval": run.retrieval, "answers": run.answers,
                    "operations": run.operations} | ({"html": str(html)} if html else {}))
        return
    for title, metrics in (("retrieval", run.retrieval), ("answers", run.answers), ("operations", run.operations)):
        if metrics:
            out.print(_metric_table(title, metrics))
    console.print(f"saved [bold]{path}[/]" + (f", report [bold]{html}[/]" if html else ""))


@eval_app.command("report")
def eval_report(run_file: Path = typer.Argument(..., help="A saved run JSON."),
                html: Path = typer.Option(..., "--html", help="Output HTML file.")) -> None:
    """Render a saved run as an HTML report with charts."""
    from spravka.evaluate.report import render_run
    from spravka.evaluate.runner import EvalRun

    html.write_text(render_run(EvalRun.load(run_file)), encoding="utf-8")
    console.print(f"report [bold]{html}[/]")


@eval_app.command("compare")
def eval_compare(
    run_a: Path = typer.Argument(..., help="Baseline run JSON."),
    run_b: Path = typer.Argument(..., help="Candidate run JSON."),
    tolerance: float = typer.Option(0.02, "--tolerance", help="Allowed drop of a gated metric (absolute)."),
    gate: list[str] = typer.Option([], "--gate", help="Metrics to gate (repeatable); default: quality metrics."),
    html: Path | None = typer.Option(None, "--html"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Metric deltas and questions that got better or worse; exits 1 on a regression (a CI gate)."""
    from spravka.evaluate.compare import compare_runs
    from spravka.evaluate.report import render_comparison
    from spravka.evaluate.runner import EvalRun

    a, b = EvalRun.load(run_a), EvalRun.load(run_b)
    cmp = compare_runs(a, b, tolerance=tolerance, gated=tuple(gate) if gate else None)
    if html:
        html.write_text(render_comparison(cmp, a, b), encoding="utf-8")
    if json_out:
        print_json({"ok": cmp.ok, "regressions": cmp.regressions, "deltas": cmp.deltas,
                    "improved": cmp.improved, "worsened": cmp.worsened})
    else:
        t = Table(title="B − A")
        for col in ("metric", "A", "B", "Δ", ""):
            t.add_column(col, justify="right" if col in ("A", "B", "Δ") else "left")
        for d in cmp.deltas:
            if d.delta is None or (not d.gated and d.delta == 0):
                continue
            flag = "[red]REGRESSION[/]" if d.regressed else ("gated" if d.gated else "")
            t.add_row(d.metric, f"{d.a:.4g}", f"{d.b:.4g}", f"{d.delta:+.4f}", flag)
        out.print(t)
        console.print(f"{len(cmp.improved)} questions better, {len(cmp.worsened)} worse")
        for c in cmp.worsened[:15]:
            console.print(f"  [red]worse[/] {c.id} ({c.what}: {c.before} → {c.after}) {c.question[:70]}")
    if not cmp.ok:
        console.print(f"[bold red]{len(cmp.regressions)} gated metric(s) dropped more than {tolerance}[/]")
        raise typer.Exit(1)


@eval_app.command("calibrate")
def eval_calibrate(
    golden: Path = GoldenOpt,
    collection: str | None = CollectionOpt,
    target_precision: float | None = typer.Option(None, "--target-precision",
                                                  help="Lowest threshold with answer precision >= this."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the threshold, do not save it."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Choose the confidence-gate threshold on a golden set and save it in the collection's settings."""
    from spravka.evaluate.calibrate import calibrate, cross_validate

    sp = state.spravka()
    name = collection or sp.settings.collection
    sp.check_collection(name)
    items = [i for i in load_golden(golden) if i.answerable or i.should_refuse]
    current = sp.store.collection_settings(name).get("answer_threshold")
    if current is None:
        current = sp.settings.answer.threshold
    points = []
    with Progress(console=console, disable=json_out) as bar:
        task = bar.add_task("questions", total=len(items))
        for item in items:
            # the gate's confidence does not depend on how the answer is then written
            a = sp.answer(item.question, collection=name, flt=parse_filters(item.filters, item.groups), mode="extractive")
            points.append((a.confidence, item.should_refuse))
            bar.advance(task)
    cal = calibrate(points, current=float(current), target_precision=target_precision)
    held_out = cross_validate(points, current=float(current), target_precision=target_precision)
    if not dry_run:
        sp.store.update_collection_settings(name, {"answer_threshold": cal.threshold})
    result = {"collection": name, "objective": cal.objective, "threshold": cal.threshold, "previous": current,
              "saved": not dry_run,
              "before": {"macro_f1": cal.baseline.macro_f1, "refusal_f1": cal.baseline.refusal_f1,
                         "answer_precision": cal.baseline.answer_precision},
              "after": {"macro_f1": cal.chosen.macro_f1, "refusal_f1": cal.chosen.refusal_f1,
                        "answer_precision": cal.chosen.answer_precision},
              # the same choice made without the questions it is scored on (5-fold): what to expect on new ones
              "after_held_out": None if held_out is None else {
                  "macro_f1": held_out.macro_f1, "refusal_f1": held_out.refusal_f1,
                  "answer_precision": held_out.answer_precision, "folds_mean_threshold": held_out.threshold}}
    if json_out:
        print_json(result)
        return
    console.print(f"{cal.objective}: threshold [bold]{cal.threshold}[/] (was {current}); "
                  f"macro-F1 {cal.baseline.macro_f1} → {cal.chosen.macro_f1}, refusal F1 "
                  f"{cal.baseline.refusal_f1} → {cal.chosen.refusal_f1}" + ("" if dry_run else "; saved"))
    if held_out is not None:
        console.print(f"  on questions the threshold was not chosen on (5-fold): macro-F1 {held_out.macro_f1}, "
                      f"refusal F1 {held_out.refusal_f1}, answer precision {held_out.answer_precision}")
    else:
        console.print("  [yellow]too few questions of one kind (answerable / should refuse) for a held-out estimate[/]")


@eval_app.command("candidates")
def eval_candidates(
    out_file: Path = typer.Option(..., "--out", "-o"),
    collection: str | None = CollectionOpt,
    limit: int = typer.Option(1000, "--limit"),
) -> None:
    """Export refused, escalated and badly rated questions from the query log as golden candidates."""
    from spravka.evaluate.building import export_candidates

    n = export_candidates(state.spravka(), out_file, collection=collection, limit=limit)
    console.print(f"{n} candidates written to [bold]{out_file}[/] (fill in expected_sources or should_refuse)")


@eval_app.command("generate")
def eval_generate(
    out_file: Path = typer.Option(..., "--out", "-o"),
    collection: str | None = CollectionOpt,
    limit: int = typer.Option(30, "--limit"),
    per_doc: int = typer.Option(1, "--per-doc"),
) -> None:
    """Synthetic golden questions written by the LLM from the KB (flagged synthetic)."""
    from spravka.evaluate.building import generate_synthetic, write_jsonl

    sp = state.spravka()
    name = collection or sp.settings.collection
    sp.check_collection(name)
    with Progress(console=console) as bar:
        task = bar.add_task("questions", total=limit)
        items = generate_synthetic(sp, name, per_doc=per_doc, limit=limit, progress=lambda: bar.advance(task))
    write_jsonl(out_file, items)
    console.print(f"{len(items)} synthetic questions written to [bold]{out_file}[/]")


@eval_app.command("extract")
def eval_extract(
    golden: Path = GoldenOpt,
    json_out: bool = typer.Option(False, "--json", help="One JSON object with the metrics."),
    details: bool = typer.Option(False, "--details", help="With --json: include per-document results."),
) -> None:
    """Structured extraction on labelled documents: accuracy per field and per record, and how
    many wrong records the checks send to a person (nothing is queued or delivered)."""
    from spravka.evaluate.extraction import evaluate_extraction, load_cases

    sp = state.spravka()
    cases = load_cases(golden)
    ex = sp.extractor
    with Progress(console=console, disable=json_out) as bar:
        task = bar.add_task("documents", total=len(cases))
        summary, results = evaluate_extraction(
            cases, lambda path, schema: ex.extract_file(path, schema, review=False, deliver=False),
            progress=lambda: bar.advance(task))
    if json_out:
        print_json(summary | ({"documents": results} if details else {}))
        return
    t = Table(title=f"extraction on {golden.name} ({summary['n']} documents)")
    t.add_column("field")
    t.add_column("accuracy", justify="right")
    for k, v in summary["fields"].items():
        t.add_row(k, f"{v:.3f}")
    out.print(t)
    out.print(f"records right {summary['records_right']:.3f} · sent to review {summary['flagged']:.3f} · "
              f"wrong records caught by the checks {summary['wrong_caught']:.3f} · right ones flagged "
              f"{summary['right_flagged']:.3f} · failed {summary['failed']}")
    for r in results:
        if not r.right:
            bad = [k for k, ok in r.fields.items() if not ok]
            out.print(f"[yellow]{Path(r.file).name}[/] ({r.status}): {', '.join(bad) or r.error}")


@eval_app.command("texts")
def eval_texts(
    golden: Path = GoldenOpt,
    tone: str | None = typer.Option(None, "--tone", help="The tone for cases without their own (default generate.tone)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object with the metrics."),
    details: bool = typer.Option(False, "--details", help="With --json: include every text."),
    html: Path | None = typer.Option(None, "--html", help="Also write a self-contained HTML report with charts."),
) -> None:
    """Text generation on a golden set: how many texts say what they must (and nothing they must
    not), how many the checks pass, how many wrong texts they catch, issues by kind, seconds.
    Nothing is queued for review or delivered."""
    from spravka.core.filters import Filter
    from spravka.evaluate.texts import evaluate_texts, load_text_cases, render_texts, to_json

    sp = state.spravka()
    cases = load_text_cases(golden)
    gen = sp.generator

    def generate(case):
        return gen.generate(case.template, case.inputs, tone=case.tone or tone,
                            flt=Filter(groups=tuple(case.groups or ())), review=False, deliver=False)

    with Progress(console=console, disable=json_out) as bar:
        task = bar.add_task("texts", total=len(cases))
        summary, results = evaluate_texts(cases, generate, embed=sp.embedder.embed_queries,
                                          progress=lambda: bar.advance(task))
    if html:
        meta = f"{golden.name} · {len(cases)} cases · {sp.settings.llm.model or sp.settings.llm.provider} · " \
               f"{dt.datetime.now().isoformat(timespec='seconds')}"
        html.write_text(render_texts(summary, results, title="Spravka: text generation", meta=meta), encoding="utf-8")
    if json_out:
        print_json(to_json(summary, results if details else None))
        raise typer.Exit(1 if summary["failed"] else 0)
    t = Table(title=f"text generation on {golden.name} ({summary['n']} cases)")
    for col in ("right", "accepted", "flagged", "wrong caught", "right flagged", "attempts", "p50 s", "similarity"):
        t.add_column(col, justify="right")
    sim = summary["similarity"]
    t.add_row(*(f"{summary[k]:.3f}" for k in ("right", "accepted", "flagged", "wrong_caught", "right_flagged")),
              f"{summary['attempts']:.2f}", f"{summary['p50_s']:.1f}", "-" if sim is None else f"{sim:.3f}")
    out.print(t)
    if summary["issues"]:
        out.print("issues: " + ", ".join(f"{k} {v:.0%}" for k, v in summary["issues"].items()))
    for r in results:
        if not r.right:
            out.print(f"[yellow]{r.id}[/] ({r.template}, {r.status}): {r.why}", highlight=False)
    if html:
        console.print(f"report: [bold]{html}[/]")
    if summary["failed"]:
        raise typer.Exit(1)  # an error (bad inputs, a dead server) is not a score: say so to scripts
