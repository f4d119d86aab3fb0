"""``spravka generate``: texts from templates in the company's tone of voice, checked.

``spravka generate TEMPLATE --set name=value ...`` writes one text; ``--input FILE.jsonl`` writes
one per line (resumable with ``--out``); ``templates``, ``pending`` and ``approve`` are
subcommands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from spravka.cli.base import app, console, default_command_group, grid, out, print_json, state
from spravka.core.errors import InputError, ModelError

generate_app = typer.Typer(
    cls=default_command_group("run"), no_args_is_help=True,  # a first word that is no subcommand: a template
    help="Text generation: spravka generate TEMPLATE --set k=v | templates | pending | approve.",
)
app.add_typer(generate_app, name="generate")

_STATUS = {"ok": "[green]ok[/]", "review": "[yellow]на проверку[/]", "failed": "[red]ошибка[/]",
           "approved": "[green]проверено[/]", "done": "[dim]уже готово[/]"}


def _pairs(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set takes name=value, not {pair[:60]!r}")
        if value.startswith("@"):  # a long text from a file
            value = Path(value[1:]).read_text(encoding="utf-8")
        values[key.strip()] = value
    return values


def _records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Input records: a JSON object, or JSON Lines (one object per line; ``_id`` names it)."""
    raw = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    try:
        whole = json.loads(raw)
        rows = whole if isinstance(whole, list) else [whole]
    except ValueError:
        rows = []
        for n, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    raise InputError(f"{path}: line {n} is not JSON: {e}") from None
    out_rows = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise InputError(f"{path}: record {n} is not a JSON object")
        rid = str(row.pop("_id", n))
        out_rows.append((rid, row))
    return out_rows


@generate_app.command("run", hidden=True)
def run(
    template: str = typer.Argument(..., help="A template name (spravka generate templates) or a .yaml file."),
    values: list[str] = typer.Option([], "--set", "-s", help="An input: name=value (name=@file reads a file)."),
    input_file: Path | None = typer.Option(None, "--input", "-i", help="Inputs as JSON, or JSON Lines for a "
                                           "batch (one object per line, '_id' names it; '-' reads stdin)."),
    tone: str | None = typer.Option(None, "--tone", "-t", help="A tone of voice (built-in name or .yaml)."),
    collection: str | None = typer.Option(None, "--collection", "-c", help="Knowledge base for templates that "
                                          "search one."),
    out_file: Path | None = typer.Option(None, "--out", "-o", help="Append results as JSON Lines; a re-run "
                                         "skips the records already there."),
    review: bool = typer.Option(True, "--review/--no-review", help="Queue doubtful texts for a person."),
    variants: int = typer.Option(1, "--variants", "-n", min=1, max=5, help="Drafts to write and check; the one "
                                 "with the fewest issues is the text, the others are shown (and kept for review)."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Write texts from a template. Exit code 1 if any record failed."""
    from spravka.generate import load_template, load_tone

    tpl = load_template(template)
    tn = load_tone(tone) if tone else None
    given = _pairs(values)
    records = _records(input_file) if input_file else [("1", {})]
    records = [(rid, {**row, **given}) for rid, row in records]
    done: dict[str, dict[str, Any]] = {}
    if out_file and out_file.is_file():
        for line in out_file.read_text(encoding="utf-8").splitlines():
            try:
                prev = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash: that record is written again
            if prev.get("status") != "failed" and prev.get("template") == tpl.name:
                done[str(prev.get("id"))] = prev
    gen = state.spravka().generator
    results: list[dict[str, Any]] = []
    batch = len(records) > 1
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[detail]}", style="dim"), console=console,
                  disable=quiet or json_out or not batch) as bar:
        task = bar.add_task("texts", total=len(records), detail="")
        for rid, row in records:
            bar.update(task, detail=rid)
            if rid in done:
                results.append({**done[rid], "status": "done"})
                bar.advance(task)
                continue
            try:
                r = gen.generate(tpl, row, tone=tn, collection=collection, review=review, variants=variants).to_dict()
            except (ModelError, InputError) as e:  # bad inputs or a dead server fail this record, not the batch
                if not batch:
                    raise
                r = {"template": tpl.name, "status": "failed", "error": e.message, "issues": []}
            r["id"] = rid
            if out_file:
                with out_file.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
            results.append(r)
            if batch and not (quiet or json_out):
                tail = r.get("error") or "; ".join(i["kind"] for i in r.get("issues", []))
                bar.console.print(f"{_STATUS.get(r['status'], r['status'])} {rid}  [dim]{tail}[/]")
            bar.advance(task)
    if json_out:
        print_json(results if batch else results[0])
    elif not batch:
        _show(results[0])
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    if batch and not json_out:
        console.print("  ".join(f"{_STATUS.get(k, k)}: {v}" for k, v in counts.items()))
    if counts.get("review") and not json_out:
        console.print("[dim]на проверке: spravka generate pending; принять: spravka generate approve ID[/]")
    if counts.get("failed"):
        raise typer.Exit(1)


def _show(r: dict[str, Any]) -> None:
    out.print(r["text"], markup=False, highlight=False)
    console.print(f"\n{_STATUS.get(r['status'], r['status'])}  {r['words']} слов, попыток: {r['attempts']}"
                  + (f"  [dim]review {r['review_id']}[/]" if r.get("review_id") else ""))
    for s in r.get("sources") or []:
        console.print(f"[dim][{s['n']}] {s['doc_id']} — {s['title']}[/]")
    for i in r.get("issues") or []:
        console.print(f"[yellow]⚠ {i['kind']}[/]: {i['message']}")
    others = [v for v in r.get("variants") or [] if not v["chosen"]]
    for n, v in enumerate(others, 2):
        console.rule(f"[dim]вариант {n}: {_STATUS.get(v['status'], v['status'])}, {v['words']} слов[/]")
        out.print(v["text"], markup=False, highlight=False)
        for i in v["issues"]:
            console.print(f"[yellow]⚠ {i['kind']}[/]: {i['message']}")


@generate_app.command("templates")
def templates(json_out: bool = typer.Option(False, "--json")) -> None:
    """Built-in templates (with their inputs) and tones of voice."""
    from spravka.generate import describe_builtin

    d = describe_builtin()
    if json_out:
        print_json(d)
        return
    grid(["template", "title", "inputs (* required)"],
         [[t["name"], t["title"], ", ".join(k + ("*" if v.get("required") else "") for k, v in t["inputs"].items())]
          for t in d["templates"]])
    grid(["tone", "title", "company"], [[t["name"], t["title"], t["company"]] for t in d["tones"]])


@generate_app.command("pending")
def pending(json_out: bool = typer.Option(False, "--json"), limit: int = typer.Option(100, "--limit")) -> None:
    """Drafts waiting for a person (inbox items of type 'generation')."""
    items = state.spravka().generator.pending(limit)
    if json_out:
        print_json([{"id": i.id, "title": i.title, "state": i.state, "text": i.payload.get("text"),
                     "issues": i.payload.get("issues")} for i in items])
        return
    if not items:
        console.print("[green]нечего проверять[/]")
        return
    grid(["id", "text", "issues"], [[i.id, i.title, "; ".join(x["message"] for x in i.payload.get("issues", [])[:4])]
                                    for i in items])


@generate_app.command("approve")
def approve(
    item_id: str = typer.Argument(..., help="Review item id (spravka generate pending)."),
    text_file: Path | None = typer.Option(None, "--text", help="The edited text ('-' reads stdin); without it "
                                          "the draft is accepted as is."),
    actor: str = typer.Option("cli", "--as", help="Who decides (kept with the decision)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Accept a draft after review (edited or as it is); it is then delivered like an automatic one."""
    text = None
    if text_file is not None:
        text = sys.stdin.read() if str(text_file) == "-" else text_file.read_text(encoding="utf-8")
    item = state.spravka().generator.approve(item_id, text, actor)
    if json_out:
        print_json({"id": item.id, "state": item.state, "resolution": item.resolution})
        return
    left = (item.resolution or {}).get("issues_left") or []
    console.print(f"[green]принято[/] {item.id}" + (f"  [yellow]осталось замечаний: {len(left)}[/]" if left else ""))
