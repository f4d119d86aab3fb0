"""``spravka keys``: API keys for the HTTP API, the web widget and bots (shown once, stored hashed)."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from spravka.cli.base import app, console, out, print_json, state

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke. Roles: admin, editor, user, bot.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="Who or what uses the key (unique among active keys)."),
    role: str = typer.Option("user", "--role", help="admin (everything), editor (documents), user, bot (ask/search)."),
    groups: str = typer.Option("", "--groups", help="Access groups the key reads, comma-separated (public is implied)."),
    rate: float | None = typer.Option(None, "--rate", help="Requests per minute (default: server.rate_per_minute)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Create a key. The full key is printed once, on stdout; only its hash is stored."""
    key, rec = state.spravka().keys.create(name, role, groups, rate_per_minute=rate)
    if json_out:
        print_json({"key": key, **rec.public()})
        return
    console.print(f"[green]created[/] key [bold]{rec.name}[/] (id {rec.id}, role {rec.role}, "
                  f"groups {', '.join(rec.groups) or 'public only'}). Save it now: it is not shown again.")
    sys.stdout.write(key + "\n")


@keys_app.command("list")
def list_keys(
    all_keys: bool = typer.Option(False, "--all", help="Include revoked keys."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """List keys (never their secrets)."""
    keys = state.spravka().keys.list(include_revoked=all_keys)
    if json_out:
        print_json([k.public() for k in keys])
        return
    t = Table(title=f"{len(keys)} API keys")
    for col in ("id", "name", "role", "groups", "rate/min", "created", "last used", "state"):
        t.add_column(col)
    for k in keys:
        t.add_row(k.id, k.name, str(k.role), ",".join(k.groups) or "—",
                  f"{k.rate_per_minute:g}" if k.rate_per_minute else "default", k.created_at[:16],
                  (k.last_used_at or "")[:16], "revoked" if k.revoked_at else "active")
    out.print(t)


@keys_app.command("revoke")
def revoke(id_or_name: str = typer.Argument(..., help="The key's id or name.")) -> None:
    """Revoke a key; it stops working at once."""
    k = state.spravka().keys.revoke(id_or_name)
    console.print(f"[yellow]revoked[/] {k.name} ({k.id})")
