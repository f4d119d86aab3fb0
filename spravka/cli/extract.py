"""``spravka extract``: documents to schema-valid JSON; a person reviews what the checks flag.

``spravka extract FILE_OR_FOLDER... --schema invoice`` extracts; ``schemas``, ``pending`` and
``approve`` are subcommands.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from spravka.cli.base import app, console, default_command_group, grid, out, print_json, state
from spravka.core.errors import InputError, LoaderError, ModelError, NotFoundError

extract_app = typer.Typer(
    cls=default_command_group("files"), no_args_is_help=True,  # a first word that is no subcommand: a file
    help="Structured extraction: spravka extract FILES --schema invoice | schemas | pending | approve.",
)
app.add_typer(extract_app, name="extract")

_STATUS = {"ok": "[green]ok[/]", "review": "[yellow]на проверку[/]", "failed": "[red]ошибка[/]",
           "approved": "[green]проверено[/]", "unchanged": "[dim]без изменений[/]"}


def _documents(paths: list[Path]) -> list[Path]:
    from spravka.ingest.loaders.base import supported_extensions
    from spravka.models.ocr import IMAGE_SUFFIXES

    ok = set(supported_extensions()) | set(IMAGE_SUFFIXES)
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in ok
                            and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.exists():
            files.append(p)
        else:
            raise NotFoundError(f"{p} not found")
    return files


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@extract_app.command("files", hidden=True)
def extract_files(
    paths: list[Path] = typer.Argument(..., help="Files or folders (PDF, scans and photos, DOCX, HTML, text)."),
    schema: str = typer.Option(..., "--schema", "-s", help="invoice, contract, receipt, or a schema .yaml"),
    out_dir: Path | None = typer.Option(None, "--out", "-o", help="Write <file>.json per document here; "
                                        "a re-run skips documents already done."),
    review: bool = typer.Option(True, "--review/--no-review", help="Queue doubtful records for a person."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Extract a schema from documents. Exit code 1 if any document failed."""
    from spravka.extract import load_schema

    sch = load_schema(schema)
    files = _documents(paths)
    if not files:
        raise InputError("no documents to extract from", hint="PDF, PNG/JPG/TIFF scans, DOCX, HTML, TXT, MD")
    ex = state.spravka().extractor
    results: list[dict[str, Any]] = []
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[detail]}", style="dim"), console=console,
                  disable=quiet or json_out) as bar:
        task = bar.add_task("documents", total=len(files), detail="")
        for f in files:
            bar.update(task, detail=f.name)
            target = out_dir / f"{f.name}.json" if out_dir else None
            sha = _sha(f)
            if target and target.is_file():
                try:
                    prev = json.loads(target.read_text(encoding="utf-8"))
                except (ValueError, OSError):
                    prev = {}
                if prev.get("file_sha256") == sha and prev.get("schema") == sch.name and prev.get("status") != "failed":
                    results.append({**prev, "status": "unchanged"})
                    bar.advance(task)
                    continue
            try:
                r = ex.extract_file(f, sch, review=review).to_dict()
            except (ModelError, LoaderError, InputError) as e:  # a dead LLM server fails this one, not the batch
                r = {"source": str(f), "schema": sch.name, "status": "failed", "error": e.message, "issues": []}
            r["file_sha256"] = sha
            if target:
                tmp = target.with_suffix(".json.tmp")
                tmp.write_text(json.dumps(r, ensure_ascii=False, indent=1), encoding="utf-8")
                tmp.replace(target)
            results.append(r)
            if not (quiet or json_out):
                bar.console.print(_line(r))
            bar.advance(task)
    if json_out:
        print_json(results if len(results) > 1 else results[0])
    elif len(results) == 1 and results[0].get("data"):
        _table(results[0])
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    if not json_out:
        console.print("  ".join(f"{_STATUS.get(k, k)}: {v}" for k, v in counts.items()))
        if counts.get("review"):
            console.print("[dim]на проверке: spravka extract pending; принять: spravka extract approve ID[/]")
    if counts.get("failed"):
        raise typer.Exit(1)


def _line(r: dict[str, Any]) -> str:
    tail = r.get("error") or "; ".join(f"{i['field']}: {i['kind']}" for i in r.get("issues", [])[:4])
    rid = f" [dim]review {r['review_id']}[/]" if r.get("review_id") else ""
    return f"{_STATUS.get(r['status'], r['status'])} {Path(r['source']).name}{rid}  [dim]{tail}[/]"


def _table(r: dict[str, Any]) -> None:
    flagged: dict[str, list[str]] = {}
    for i in r.get("issues", []):
        flagged.setdefault(i["field"].split("[", 1)[0], []).append(i["message"])
    t = Table(show_header=True, box=None, title=f"{Path(r['source']).name} ({r['schema']}, {r['text_method']})")
    t.add_column("поле")
    t.add_column("значение")
    t.add_column("проверка")
    for k, v in (r.get("data") or {}).items():
        if isinstance(v, list):
            v = "\n".join(json.dumps(x, ensure_ascii=False) for x in v)
        t.add_row(k, "—" if v is None else str(v), "[yellow]" + "; ".join(flagged.get(k, [])) + "[/]" if k in flagged else "")
    out.print(t)


@extract_app.command("schemas")
def schemas(json_out: bool = typer.Option(False, "--json")) -> None:
    """Built-in schemas and their fields."""
    from spravka.extract import describe_builtin

    rows = describe_builtin()
    if json_out:
        print_json(rows)
        return
    grid(["schema", "title", "fields"], [[r["name"], r["title"], ", ".join(r["fields"])] for r in rows])


@extract_app.command("pending")
def pending(json_out: bool = typer.Option(False, "--json"), limit: int = typer.Option(100, "--limit")) -> None:
    """Records waiting for a person (inbox items of type 'extraction')."""
    items = state.spravka().extractor.pending(limit)
    if json_out:
        print_json([{"id": i.id, "title": i.title, "state": i.state, "source": i.payload.get("source"),
                     "issues": i.payload.get("issues"), "data": i.payload.get("data")} for i in items])
        return
    if not items:
        console.print("[green]нечего проверять[/]")
        return
    grid(["id", "document", "issues"], [[i.id, i.title, "; ".join(f"{x['field']}: {x['message']}"
                                                                for x in i.payload.get("issues", [])[:5])]
                                          for i in items])


@extract_app.command("approve")
def approve(
    item_id: str = typer.Argument(..., help="Review item id (spravka extract pending)."),
    data: Path | None = typer.Option(None, "--data", help="The corrected record, JSON ('-' reads stdin); "
                                     "without it the proposed record is accepted as is."),
    actor: str = typer.Option("cli", "--as", help="Who decides (kept with the decision)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Accept a record after review (corrected or as proposed); it is then delivered like an automatic one."""
    record = None
    if data is not None:
        raw = sys.stdin.read() if str(data) == "-" else data.read_text(encoding="utf-8")
        try:
            record = json.loads(raw)
        except ValueError as e:
            raise InputError(f"--data is not JSON: {e}") from None
        if not isinstance(record, dict):
            raise InputError("--data must be a JSON object (the record)")
    item = state.spravka().extractor.approve(item_id, record, actor)
    if json_out:
        print_json({"id": item.id, "state": item.state, "resolution": item.resolution})
        return
    left = (item.resolution or {}).get("issues_left") or []
    console.print(f"[green]принято[/] {item.id}" + (f"  [yellow]осталось замечаний: {len(left)}[/]" if left else ""))
