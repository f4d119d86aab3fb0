"""``spravka ask`` and ``spravka chat``: answers with citations in the terminal."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from spravka.cli.base import app, console, out, print_json, state
from spravka.core.filters import Filter, parse_filters
from spravka.core.types import Answer, AnswerStatus

_STATUS_STYLE = {
    AnswerStatus.ANSWERED: "green",
    AnswerStatus.REFUSED: "yellow",
    AnswerStatus.ESCALATE: "magenta",
}
_QUIT = {"exit", "quit", "выход", ":q"}


def _filter(filters: list[str], groups: str | None) -> Filter:
    return parse_filters(filters, groups.split(",") if groups is not None else None)


@app.command()
def ask(
    question: str = typer.Argument(..., help="The question, as a user would type it."),
    collection: str | None = typer.Option(
        None, "--collection", "-c", help="Collection; default from settings."
    ),
    filters: list[str] = typer.Option(
        [], "--filter", "-f", help="key=value, key>=value, key=a,b (repeatable)."
    ),
    groups: str | None = typer.Option(
        None, "--groups", help="Answer as a user of these access groups (comma list)."
    ),
    mode: str | None = typer.Option(
        None, "--mode", help="auto, extractive or generative (default: settings)."
    ),
    escalate: bool = typer.Option(
        False, "--escalate", help="Below the confidence threshold, hand over to a human."
    ),
    json_out: bool = typer.Option(False, "--json", help="The whole Answer as JSON."),
) -> None:
    """Answer a question from the knowledge base, with citations, or refuse honestly."""
    sp = state.spravka()
    answer = sp.answer(
        question, collection=collection, flt=_filter(filters, groups), mode=mode, escalate=escalate or None
    )
    if json_out:
        print_json(answer)
        return
    render_answer(answer)


@app.command()
def chat(
    collection: str | None = typer.Option(None, "--collection", "-c"),
    filters: list[str] = typer.Option([], "--filter", "-f", help="key=value (repeatable)."),
    groups: str | None = typer.Option(None, "--groups", help="Access groups of the asker (comma list)."),
    mode: str | None = typer.Option(None, "--mode", help="auto, extractive or generative."),
) -> None:
    """Ask questions one per line (stdin may be piped); 'exit' or end of input quits."""
    sp = state.spravka()
    flt = _filter(filters, groups)
    interactive = sys.stdin.isatty()
    if interactive:
        console.print("[dim]Вопрос на строку; 'exit' — выход. One question per line; 'exit' quits.[/]")
    while True:
        if interactive:
            console.print("[bold cyan]?[/] ", end="")
        line = sys.stdin.readline()
        if not line:
            break
        question = line.strip()
        if not question:
            continue
        if question.lower() in _QUIT:
            break
        if not interactive:
            out.print(f"[bold cyan]?[/] {escape(question)}")
        streamed = False
        final: Answer | None = None
        for event in sp.answer_stream(question, collection=collection, flt=flt, mode=mode):
            if isinstance(event, Answer):
                final = event
            elif isinstance(event, str):
                out.print(escape(event), end="")
                streamed = True
            else:  # StreamReset: the post-check replaced what was shown
                out.print(f"\n[dim]({escape(event.reason)}; corrected answer:)[/]")
        if streamed:
            out.print()
        if final is not None:
            render_citations(final)


def render_answer(a: Answer) -> None:
    style = _STATUS_STYLE.get(a.status, "white")
    title = f"[{style}]{a.status}[/] · {a.mode} · confidence {a.confidence:.2f}"
    out.print(Panel(escape(a.text), title=title, title_align="left"))
    render_citations(a)


def render_citations(a: Answer) -> None:
    if a.citations:
        t = Table(show_header=True, show_lines=False, box=None, pad_edge=False)
        for col in ("#", "source", "where", "snippet"):
            t.add_column(col, overflow="fold")
        for c in a.citations:
            where = " · ".join(x for x in (c.heading, f"p. {c.page}" if c.page else "") if x)
            snippet = c.snippet if len(c.snippet) <= 160 else c.snippet[:160].rsplit(" ", 1)[0] + " …"
            t.add_row(f"[{c.n}]", escape(f"{c.doc_id}\n{c.title}"), escape(where), escape(snippet))
        out.print(t)
    elif a.related:
        out.print("[dim]Возможно, поможет:[/] " + escape(" · ".join(
            f"{r['title']}" + (f" — {r['heading']}" if r["heading"] else "") + f" ({r['doc_id']})" for r in a.related)))
    total = a.timings_ms.get("total_ms", 0.0)
    extra = f" · tokens {a.tokens.get('total', 0)}" if a.tokens else ""
    notes = ("\n" + "\n".join(f"  {n}" for n in a.notes)) if a.notes else ""
    console.print(f"[dim]{total:.0f} ms{extra}{escape(notes)}[/]")
