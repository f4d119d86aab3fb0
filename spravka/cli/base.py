"""Shared CLI plumbing: the root Typer app, global options, error rendering."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from spravka.core.errors import InputError, LoaderError, NotFoundError, SpravkaError
from spravka.core.types import to_jsonable

app = typer.Typer(
    name="spravka",
    help="Spravka: on-premise knowledge-base assistant. Your data stays inside your perimeter.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
out = Console()


@dataclass
class CliState:
    overrides: dict[str, Any] = field(default_factory=dict)
    _app: Any = None

    def spravka(self):
        """The composition root, built once per command from settings plus CLI flags."""
        if self._app is None:
            from spravka.app import Spravka
            from spravka.core.settings import load_settings

            self._app = Spravka(load_settings(**self.overrides))
        return self._app


state = CliState()


@app.callback()
def _root(
    data_dir: Path | None = typer.Option(
        None, "--data-dir", envvar="SPRAVKA_HOME", help="Data directory (default ~/.spravka).", show_envvar=True
    ),
    embedder: str | None = typer.Option(
        None, "--embedder", help="Embedding model: e5 (default), use, openai, sentence-transformers."
    ),
) -> None:
    if data_dir is not None:
        state.overrides["home"] = data_dir
    if embedder is not None:
        state.overrides["embedder"] = {"provider": embedder}


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(obj), ensure_ascii=False, indent=2) + "\n")


def exit_code_for(err: SpravkaError) -> int:
    if isinstance(err, InputError | NotFoundError | LoaderError):
        return 2
    return 1


def main() -> None:
    try:
        app()
    except SpravkaError as e:
        console.print(f"[bold red]Ошибка / error:[/] {e}")
        raise SystemExit(exit_code_for(e)) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; re-run the same command to resume[/]")
        raise SystemExit(130) from None
    finally:
        if state._app is not None:
            state._app.close()


def grid(columns: list[str], rows: list[list[str]]) -> None:
    """A plain table on stdout (lists of schemas, templates, review items)."""
    from rich.table import Table

    t = Table(show_header=True, box=None)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*r)
    out.print(t)


def default_command_group(command: str) -> type[TyperGroup]:
    """A command group whose first word, when it is no subcommand, goes to the hidden ``command``:
    ``spravka classify "текст"`` and ``spravka extract FILE`` beside their subcommands."""

    class Group(TyperGroup):
        def resolve_command(self, ctx: Any, args: list[str]):
            if args and args[0] not in self.commands:
                args = [command, *args]
            return super().resolve_command(ctx, args)

    return Group
