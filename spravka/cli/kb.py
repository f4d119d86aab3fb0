"""Knowledge-base commands: ingest, search, docs, collections."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from spravka.cli.base import app, console, out, print_json, state
from spravka.cli.progress import RichIngestProgress
from spravka.core.filters import parse_filters
from spravka.core.types import DocStatus

CollectionOpt = typer.Option(None, "--collection", "-c", help="Collection (knowledge base); default from settings.")


@app.command()
def ingest(
    path: Path = typer.Argument(..., help="A file or a folder (walked recursively)."),
    collection: str | None = CollectionOpt,
    prune: bool = typer.Option(False, "--prune", help="Remove documents whose files are gone from PATH."),
    force: bool = typer.Option(False, "--force", help="Re-process every file, even unchanged ones."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Ingest documents: incremental, idempotent, resumable (re-run after a crash)."""
    sp = state.spravka()
    with RichIngestProgress(console, quiet=quiet or json_out) as progress:
        report = sp.ingest(path, collection, prune=prune, force=force, progress=progress)
    if json_out:
        print_json(report)
        return
    console.print(
        f"[bold green]done[/] in {report.seconds:.1f}s: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.duplicates} duplicates, {report.pruned} pruned, "
        f"{report.failed} failed files; {report.chunks} chunks, {report.embedded} embedded "
        f"({report.embed_cache_hits} from cache)"
    )
    if report.failures:
        t = Table(title="Problems", show_lines=False)
        for col in ("document", "reason", "message"):
            t.add_column(col)
        for doc, reason, message in report.failures:
            t.add_row(doc, reason, message)
        console.print(t)


@app.command()
def search(
    query: str = typer.Argument(..., help="The question, in any words."),
    collection: str | None = CollectionOpt,
    filters: list[str] = typer.Option([], "--filter", "-f", help="key=value, key>=value, key=a,b (repeatable)."),
    groups: str | None = typer.Option(None, "--groups", help="Search as a user of these access groups (comma list)."),
    k: int = typer.Option(5, "--k", "-k", min=1, max=100),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, dense or lexical."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Hybrid search: lexical (Russian morphology) + dense, fused."""
    sp = state.spravka()
    flt = parse_filters(filters, groups.split(",") if groups is not None else None)
    result = sp.search(query, collection=collection, flt=flt, k=k, mode=mode)
    if json_out:
        print_json(result)
        return
    render_hits(result)


def render_hits(result, snippet: int = 220) -> None:
    t = Table(title=f"«{result.query}»  ({result.timings_ms.get('total_ms', 0):.0f} ms)", show_lines=True)
    t.add_column("#", justify="right")
    t.add_column("score", justify="right")
    t.add_column("source")
    t.add_column("text")
    for h in result.hits:
        where = h.doc_id + (f"\n[dim]{h.heading}[/]" if h.heading else "") + (f"\n[dim]p. {h.page}[/]" if h.page else "")
        if h.duplicates:
            where += "\n[dim]тот же текст: " + ", ".join(h.duplicates) + "[/]"
        text = h.text if len(h.text) <= snippet else h.text[:snippet].rsplit(" ", 1)[0] + " …"
        t.add_row(str(h.rank), f"{h.score:.2f}", where, text)
    if not result.hits:
        t.add_row("", "", "", "[yellow]nothing found[/]")
    out.print(t)


@app.command()
def docs(
    collection: str | None = CollectionOpt,
    status: DocStatus | None = typer.Option(None, "--status", help="Only documents with this status."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """List documents with their ingestion status and errors."""
    sp = state.spravka()
    name = collection or sp.settings.collection
    records = sp.store.list_documents(name, status)
    if json_out:
        print_json(records)
        return
    t = Table(title=f"{name}: {len(records)} documents")
    for col in ("id", "title", "status", "chunks", "format", "groups", "problem"):
        t.add_column(col, overflow="fold")
    colours = {"ok": "green", "failed": "red", "duplicate": "dim", "pending": "yellow"}
    for r in records:
        problem = r.error or (f"duplicate of {r.duplicate_of}" if r.duplicate_of else "")
        t.add_row(r.id, r.title[:60], f"[{colours.get(str(r.status), 'white')}]{r.status}[/]", str(r.n_chunks),
                  r.format, ",".join(r.access_groups), problem)
    out.print(t)


@app.command()
def collections(json_out: bool = typer.Option(False, "--json")) -> None:
    """List collections (separate knowledge bases)."""
    rows = state.spravka().store.list_collections()
    if json_out:
        print_json(rows)
        return
    t = Table(title="collections")
    for col in ("name", "documents", "chunks", "embedder", "created"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["name"], str(r["documents"]), str(r["chunks"]), str(r["settings"].get("embedder", "")),
                  r["created_at"])
    out.print(t)
