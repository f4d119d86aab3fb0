"""``spravka outbox``: deliveries to outside systems (escalation tickets, webhooks, Telegram replies)."""

from __future__ import annotations

import contextlib
import time

import typer
from rich.markup import escape
from rich.table import Table

from spravka.cli.base import app, console, out, print_json, state
from spravka.store.queues import OutboxState

outbox_app = typer.Typer(help="The outbox: list deliveries, retry dead ones, run the dispatcher.",
                         no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("list")
def list_messages(
    state_: str | None = typer.Option(None, "--state", help="pending, delivered or dead."),
    limit: int = typer.Option(50, "--limit"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Messages, newest first (targets and states; payloads with --json)."""
    msgs = state.spravka().outbox.list(state=OutboxState(state_) if state_ else None, limit=limit)
    if json_out:
        print_json(msgs)
        return
    t = Table()
    for col in ("id", "target", "state", "attempts", "created", "last error"):
        t.add_column(col)
    for m in msgs:
        target = m.target if not m.target.startswith("telegram:") else "telegram:…"
        t.add_row(m.id, escape(target[:60]), str(m.state), str(m.attempts), m.created_at[:19],
                  escape((m.last_error or "")[:60]))
    out.print(t)


@outbox_app.command("retry")
def retry(message_id: str = typer.Argument(..., help="A dead message's id.")) -> None:
    """Put a dead message back in the queue."""
    state.spravka().outbox.retry(message_id)
    console.print(f"{message_id}: queued again")


@outbox_app.command("dispatch")
def dispatch(
    loop: bool = typer.Option(False, "--loop", help="Keep running (like spravka serve does) until Ctrl+C."),
) -> None:
    """Send what is due now with the configured senders (once, or in a loop)."""
    sp = state.spravka()
    if not loop:
        r = sp.dispatcher.run_once()
        console.print(f"delivered {len(r.delivered)}, retried {len(r.retried)}, dead {len(r.dead)}")
        return
    sp.start_dispatcher()
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(1)
