"""``spravka migrate``: copy the knowledge base to another storage backend, no re-embedding."""

from __future__ import annotations

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from spravka.cli.base import app, console, print_json, state


class RichMigrateProgress:
    """A bar per collection (documents) with the chunks copied, and a counter for cached vectors."""

    def __init__(self, quiet: bool = False) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}", style="dim"),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
        )
        self._vectors: TaskID | None = None
        self._docs: TaskID | None = None
        self._chunks = 0

    def __enter__(self) -> RichMigrateProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def vectors(self, n: int) -> None:
        if self._vectors is None:
            self._vectors = self.progress.add_task("embedding cache", total=None, detail="vectors")
        self.progress.update(self._vectors, advance=n)

    def collection(self, name: str, documents: int) -> None:
        self._chunks = 0
        self._docs = self.progress.add_task(f"collection {name}", total=documents, detail="")

    def document(self, doc_id: str, chunks: int, copied: bool) -> None:
        self._chunks += chunks if copied else 0
        if self._docs is not None:
            self.progress.update(self._docs, advance=1, detail=f"{self._chunks} chunks · {doc_id[-40:]}")


@app.command()
def migrate(
    to: str = typer.Option(
        ...,
        "--to",
        help="Target store: postgres://user:password@host/db, milvus://host:19530, "
        "milvus:///path/file.db or sqlite (the data directory).",
    ),
    collections: list[str] = typer.Option(
        [], "--collection", "-c", help="Only these collections (repeatable)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Copy documents, sources, chunks with their vectors and the embedding cache to another
    store. Resumable: re-run after an interruption and it continues; a finished run is a no-op."""
    from spravka.app import Spravka
    from spravka.core.errors import InputError
    from spravka.store.migrate import migrate as run_migration

    sp = state.spravka()
    if to.strip() == sp.settings.store.url.strip():
        raise InputError("the target is the current store", hint="set --to to another store URL")
    settings = sp.settings.model_copy(update={"store": sp.settings.store.model_copy(update={"url": to})})
    target = Spravka(settings)
    try:
        with RichMigrateProgress(quiet=quiet or json_out) as progress:
            report = run_migration(
                sp.store, sp.index, target.store, target.index, collections or None, progress
            )
    finally:
        target.close()
    if json_out:
        print_json(report)
        return
    console.print(
        f"[bold green]done[/] in {report.seconds:.1f}s: {len(report.collections)} collection(s), "
        f"{report.copied} documents copied, {report.skipped} already there, {report.chunks} chunks, "
        f"{report.vectors} cached vectors, {report.sources} sources"
    )
    console.print(f"Use it with [bold]SPRAVKA_STORE__URL={_redact(to)}[/]")


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        return urlunsplit((parts.scheme, parts.netloc.replace(f":{parts.password}@", ":***@"), *parts[2:]))
    return url
