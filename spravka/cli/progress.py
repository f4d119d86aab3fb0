"""Rich progress for long work: a bar per run, a line per problem, a summary at the end."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class RichIngestProgress:
    """Implements :class:`spravka.ingest.pipeline.ProgressSink` with two bars: files and chunks."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}", style="dim"), TimeElapsedColumn(),
            console=console, disable=quiet, transient=False,
        )
        self.files: TaskID | None = None
        self.chunks: TaskID | None = None

    def __enter__(self) -> RichIngestProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def start(self, total_files: int) -> None:
        self.files = self.progress.add_task("files", total=total_files, detail="")
        self.chunks = self.progress.add_task("chunks embedded", total=None, detail="")

    def file_done(self, path: str, status: str, detail: str = "") -> None:
        if status in ("failed", "partial", "skipped") and not self.quiet:
            colour = {"failed": "red", "partial": "yellow", "skipped": "dim"}[status]
            self.progress.console.print(f"  [{colour}]{status:8}[/] {path}  {detail}")
        if status != "pruned" and self.files is not None:
            self.progress.update(self.files, advance=1, detail=path[-50:])

    def embedded(self, n: int) -> None:
        if self.chunks is not None:
            self.progress.update(self.chunks, advance=n)
