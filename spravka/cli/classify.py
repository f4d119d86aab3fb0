"""``spravka classify``: classify and route tickets, learn from corrections, evaluate.

``spravka classify "текст"`` classifies one ticket; the other words after ``classify`` are
subcommands (import, batch, eval, retrain, correct, triage, resolve, learn, status).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from spravka.cli.base import app, console, default_command_group, out, print_json, state
from spravka.core.errors import InputError

classify_app = typer.Typer(
    cls=default_command_group("text"), no_args_is_help=True,  # a first word that is no subcommand: the text
    help='Classify and route tickets: spravka classify "текст обращения" | import | batch | eval | retrain | '
         'correct | triage | resolve | learn | status.',
)
app.add_typer(classify_app, name="classify")


def _meta(pairs: list[str]) -> dict[str, str]:
    meta = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--meta expects key=value, got '{p}'")
        meta[key.strip()] = value.strip()
    return meta


def _bar(disable: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, disable=disable)


@classify_app.command("text", hidden=True)
def classify_text(
    text: str = typer.Argument(..., help="The ticket text."),
    meta: list[str] = typer.Option([], "--meta", "-m", help="Ticket metadata key=value (tier, channel, ...)."),
    ticket_id: str | None = typer.Option(None, "--ticket-id", help="Your ticket id (idempotent delivery)."),
    method: str | None = typer.Option(None, "--method", help="auto, ensemble, knn or llm (default: settings)."),
    dispatch: bool = typer.Option(False, "--dispatch", help="Deliver: triage item, queue item, outbox messages."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Classify one ticket and show where it would go (with --dispatch: send it there)."""
    cl = state.spravka().classifier
    c = cl.classify(text, _meta(meta), ticket_id=ticket_id, method=method)
    d = cl.route(c, dispatch=dispatch)
    if json_out:
        print_json({"classification": c, "route": d})
        return
    flag = "[yellow]на разбор (triage)[/]" if c.needs_review else "[green]уверенно[/]"
    out.print(f"[bold]{c.title}[/] ({c.label})  уверенность {c.confidence:.2f}  {flag}  [dim]{c.method}[/]")
    out.print(f"[dim]{c.explanation}[/]")
    t = Table(show_header=True, box=None)
    t.add_column("кандидат")
    t.add_column("p", justify="right")
    for cand in c.candidates[:3]:
        t.add_row(f"{cand.title} ({cand.label})", f"{cand.confidence:.2f}")
    out.print(t)
    verb = "отправлено" if d.dispatched else "маршрут"
    out.print(f"{verb}: {', '.join(d.targets)}  приоритет {d.priority}" + (f"  SLA до {d.sla_due}" if d.sla_due else "")
              + (f"  правила: {', '.join(d.rules)}" if d.rules else ""))
    out.print(f"[dim]ticket id {c.ticket_id}[/]")


@classify_app.command("import")
def import_taxonomy(
    taxonomy: Path = typer.Argument(..., help="Taxonomy YAML/JSON (categories, examples, routing)."),
    rules: Path | None = typer.Option(None, "--rules", help="Routing rules YAML/JSON."),
) -> None:
    """Store a taxonomy (and rules) in the data directory; its examples become seed examples."""
    cl = state.spravka().classifier
    tax = cl.import_taxonomy(taxonomy, rules)
    st = cl.status()
    n = sum(sum(v.values()) for v in st["examples"].values())
    console.print(f"[green]taxonomy '{tax.name}' v{st['version']}[/]: {len(tax.labels)} categories, {n} examples, "
                  f"{len(st['rules'])} routing rules")


@classify_app.command("batch")
def batch(
    file: Path = typer.Argument(..., help="CSV (or JSONL) of tickets."),
    text_column: str = typer.Option("text", "--text-column"),
    id_column: str | None = typer.Option(None, "--id-column", help="Ticket id column (default: file:row)."),
    meta_columns: str | None = typer.Option(None, "--meta-columns", help="Comma list of metadata columns."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Results CSV."),
    method: str | None = typer.Option(None, "--method"),
    dispatch: bool = typer.Option(False, "--dispatch", help="Also deliver each ticket (triage, queues, outbox)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Classify a file of tickets into a results CSV (label, confidence, needs_review, route)."""
    rows = _read_rows(file)
    if rows and text_column not in rows[0]:
        raise InputError(f"{file} has no column '{text_column}'", hint=f"columns: {', '.join(rows[0])}")
    rows = [r for r in rows if str(r.get(text_column) or "").strip()]
    cl = state.spravka().classifier
    metas = [{k: r.get(k) for k in (meta_columns or "").split(",") if k} for r in rows]
    ids = [str(r[id_column]) if id_column else f"{file.stem}:{i + 1}" for i, r in enumerate(rows)]
    cl.engine()  # load the model before the bar starts
    results = []
    with _bar(quiet) as bar:
        task = bar.add_task("tickets", total=len(rows))
        for a in range(0, len(rows), 64):
            part = cl.classify_many([str(r[text_column]) for r in rows[a: a + 64]], metas[a: a + 64], ids[a: a + 64],
                                    method=method, progress=lambda n: bar.advance(task, n))
            results += part
    fields = ["ticket_id", "label", "title", "confidence", "needs_review", "method", "route", "candidates",
              "explanation"]
    review = 0
    with out_path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*rows[0].keys(), *fields] if rows else fields, extrasaction="ignore")
        w.writeheader()
        for r, c in zip(rows, results, strict=True):
            d = cl.route(c, dispatch=dispatch)
            review += c.needs_review
            w.writerow({**r, "ticket_id": c.ticket_id, "label": c.label, "title": c.title,
                        "confidence": f"{c.confidence:.4f}", "needs_review": int(c.needs_review), "method": c.method,
                        "route": " ".join(d.targets),
                        "candidates": "; ".join(f"{x.label}:{x.confidence:.2f}" for x in c.candidates[:3]),
                        "explanation": c.explanation})
    console.print(f"[green]{len(results)} tickets[/] → {out_path}; {review} below the threshold (triage)"
                  + ("; delivered" if dispatch else ""))


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


@classify_app.command("eval")
def evaluate(
    train: Path = typer.Option(..., "--train", help="Labelled training data: JSONL {text,label} or CSV."),
    test: Path = typer.Option(..., "--test", help="Labelled test data, same format."),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("label", "--label-column"),
    method: str | None = typer.Option(None, "--method", help="auto, ensemble, knn or llm."),
    llm: bool = typer.Option(False, "--llm", help="Let the LLM decide unsure tickets (method auto)."),
    threshold: float | None = typer.Option(None, "--threshold", help="Confidence threshold for coverage."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object: n, accuracy, macro_f1, ..."),
    details: bool = typer.Option(False, "--details", help="With --json: include every prediction."),
) -> None:
    """Fit on --train (in memory), classify --test: accuracy, macro-F1, per-class F1, confusion,
    coverage at the threshold."""
    from spravka.classify.evaluate import evaluate as run_eval
    from spravka.classify.evaluate import load_labelled

    sp = state.spravka()
    s = sp.settings.classify.model_copy(update={k: v for k, v in {"threshold": threshold}.items() if v is not None})
    if not llm and (method or s.method) == "auto":
        method = "ensemble"
    tr = load_labelled(train, text_column, label_column)
    te = load_labelled(test, text_column, label_column)
    taxonomy = None
    try:
        taxonomy = sp.classifier.taxonomy
    except Exception:  # noqa: BLE001 - no stored taxonomy: labels come from the files
        taxonomy = None
    with _bar(json_out) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        report = run_eval(sp.embedder, s, tr, te, taxonomy=taxonomy, method=method,
                          llm=lambda: sp.llm, llm_available=sp.llm_available, progress=progress)
    if json_out:
        if not details:
            report.pop("predictions", None)
        print_json(report)
        return
    report.pop("predictions", None)
    out.print(f"[bold]n={report['n']}[/] (train {report['train']})  accuracy [bold]{report['accuracy']:.4f}[/]  "
              f"macro-F1 [bold]{report['macro_f1']:.4f}[/]  method {report['method']}")
    out.print(f"coverage at threshold {report['threshold']:.2f}: {report['coverage']:.1%} of tickets routed without a "
              f"person, accuracy {report['accuracy_covered']:.4f} on them ({report['novel']:.1%} out of scope); "
              f"accuracy at 80% coverage {report['accuracy_at_80_coverage']:.4f}; ECE {report['ece']:.3f}")
    t = Table(title="per class")
    for col in ("class", "precision", "recall", "F1", "support"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for lab, v in sorted(report["per_class"].items(), key=lambda kv: kv[1]["f1"]):
        t.add_row(lab, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"]))
    out.print(t)
    labels, m = report["confusion"]["labels"], report["confusion"]["matrix"]
    if len(labels) <= 15:
        cm = Table(title="confusion (rows: gold, columns: predicted)")
        cm.add_column("")
        for j in range(len(labels)):
            cm.add_column(str(j), justify="right")
        for i, lab in enumerate(labels):
            cm.add_row(f"{i} {lab[:28]}", *[str(x) if x else "·" for x in m[i]])
        out.print(cm)
    else:
        pairs = sorted(((m[i][j], labels[i], labels[j]) for i in range(len(labels)) for j in range(len(labels))
                        if i != j and m[i][j]), reverse=True)[:15]
        cm = Table(title=f"most frequent confusions ({len(labels)} classes; full matrix with --json)")
        for col in ("gold", "predicted", "n"):
            cm.add_column(col)
        for n, g, p in pairs:
            cm.add_row(g, p, str(n))
        out.print(cm)


@classify_app.command("retrain")
def retrain(json_out: bool = typer.Option(False, "--json")) -> None:
    """Refit the supervised model and the calibration on all examples (corrections included)."""
    rep = state.spravka().classifier.retrain()
    if json_out:
        print_json(rep)
        return
    cv = f"; out-of-fold accuracy {rep.cv_accuracy:.3f}, macro-F1 {rep.cv_macro_f1:.3f}" if rep.cv_accuracy else ""
    console.print(f"[green]retrained[/] on {rep.n} examples, {rep.classes} classes in {rep.seconds:.1f}s: "
                  f"members {rep.weights}, temperature {rep.temperature:.2f}{cv}")
    for note in rep.notes:
        console.print(f"[yellow]{note}[/]")


@classify_app.command("correct")
def correct(
    label: str = typer.Argument(..., help="The right category (label or title)."),
    ticket_id: str | None = typer.Option(None, "--ticket", help="A ticket classified before."),
    text: str | None = typer.Option(None, "--text", help="Or the text itself."),
    actor: str = typer.Option("cli", "--by"),
) -> None:
    """Record the right category for a ticket: it becomes a labelled example at once."""
    cl = state.spravka().classifier
    cl.correct(label, ticket_id=ticket_id, text=text, actor=actor)
    console.print(f"[green]learned[/]: {cl.taxonomy.resolve(label)}")


@classify_app.command("learn")
def learn(
    file: Path = typer.Argument(..., help="Labelled examples: JSONL {text,label} or CSV."),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("label", "--label-column"),
) -> None:
    """Add labelled examples (labels must exist in the taxonomy); run retrain afterwards."""
    from spravka.classify.evaluate import load_labelled

    n = state.spravka().classifier.add_examples(load_labelled(file, text_column, label_column), source="import")
    console.print(f"[green]{n} examples added or relabelled[/]; run 'spravka classify retrain' to refit")


@classify_app.command("triage")
def triage(limit: int = typer.Option(20, "--limit"), json_out: bool = typer.Option(False, "--json")) -> None:
    """Open tickets waiting for a person to choose the category."""
    from spravka.store.queues import InboxState

    sp = state.spravka()
    items = [i for i in sp.inbox.list(type="triage", limit=limit * 3) if i.state in (InboxState.OPEN, InboxState.CLAIMED)]
    items = items[:limit]
    if json_out:
        print_json(items)
        return
    t = Table(title=f"triage: {len(items)} open")
    for col in ("id", "ticket", "text", "candidates"):
        t.add_column(col, overflow="fold")
    for i in items:
        cands = ", ".join(f"{c['label']} {c['confidence']:.2f}" for c in i.payload.get("candidates", [])[:3])
        t.add_row(i.id, str(i.payload.get("ticket_id", "")), str(i.payload.get("text", ""))[:80], cands)
    out.print(t)


@classify_app.command("resolve")
def resolve(
    item_id: str = typer.Argument(..., help="Triage item id (spravka classify triage)."),
    label: str = typer.Argument(..., help="The right category."),
    actor: str = typer.Option("cli", "--by"),
) -> None:
    """Close a triage item: the category is learned and the ticket is routed with it."""
    d = state.spravka().classifier.resolve_triage(item_id, label, actor=actor)
    console.print(f"[green]{d.label}[/] → {', '.join(d.targets)}")


@classify_app.command("status")
def status(json_out: bool = typer.Option(False, "--json")) -> None:
    """The taxonomy, examples per category, the fitted model and the triage queue."""
    st = state.spravka().classifier.status()
    if json_out:
        print_json(st)
        return
    out.print(f"[bold]{st['taxonomy']}[/] v{st['version']}: {st['labels']} categories, method {st['method']}, "
              f"threshold {st['threshold']}, {st['triage_open']} open triage items, rules: {', '.join(st['rules']) or '—'}")
    t = Table()
    t.add_column("category")
    t.add_column("examples by source")
    for lab, counts in st["examples"].items():
        t.add_row(lab, ", ".join(f"{k} {v}" for k, v in counts.items()) or "[red]none[/]")
    out.print(t)
    m = st["model"]
    if m is None:
        out.print("[yellow]no fitted model yet[/] (kNN until the first classification or retrain)")
    else:
        rep = m["report"] or {}
        out.print(f"model fitted {m['fitted_at']} on {rep.get('n')} examples, members {rep.get('weights')}"
                  + (" [yellow](stale: run retrain)[/]" if m["stale"] else ""))
