"""``spravka agent``: run a governed agent, approve or reject its actions, read its audit trail."""

from __future__ import annotations

import getpass
import json
from typing import Any

import typer

from spravka.cli.base import app, console, grid, out, print_json, state
from spravka.core.errors import InputError

agent_app = typer.Typer(no_args_is_help=True, help="Governed agents: list | run | approvals | approve | reject | trail | recover.")
app.add_typer(agent_app, name="agent")

_OUTCOME = {"ok": "[green]ok[/]", "error": "[red]ошибка[/]", "denied": "[red]запрещено[/]",
            "invalid": "[yellow]неверные аргументы[/]", "limit": "[yellow]лимит[/]",
            "awaiting_approval": "[yellow]ждёт одобрения[/]", "rejected": "[red]отклонено[/]"}


def _me(actor: str | None) -> str:
    return actor or getpass.getuser()


def _show(r: dict[str, Any]) -> None:
    for s in r["steps"]:
        by = f" [dim](одобрил {s['approved_by']})[/]" if s.get("approved_by") and s["outcome"] == "ok" else ""
        by += " [dim](после перезапуска)[/]" if s.get("recovered") else ""
        console.print(f"{s['step']}. {s['tool']} {json.dumps(s['arguments'], ensure_ascii=False)} → "
                      f"{_OUTCOME.get(s['outcome'], s['outcome'])}{by}")
    if r["status"] == "awaiting_approval":
        console.print(f"[yellow]ждёт одобрения[/]: {r['approval_id']}  (spravka agent approve|reject {r['approval_id']})")
    else:
        out.print(r["answer"], markup=False, highlight=False)
        if r["status"] != "done":
            console.print(f"[yellow]{r['status']}[/]")
    console.print(f"[dim]run {r['run_id']}: spravka agent trail {r['run_id']}[/]")


@agent_app.command("list")
def list_agents(json_out: bool = typer.Option(False, "--json")) -> None:
    """Agents of agents.dir with their tools and who may run them."""
    agents = state.spravka().agents.available()
    if json_out:
        print_json([a.model_dump() for a in agents])
        return
    grid(["agent", "title", "tools", "roles"], [[a.name, a.title, ", ".join(a.tools), ", ".join(a.run_roles)]
                                                for a in agents])


@agent_app.command("run")
def run(
    name: str = typer.Argument(..., help="The agent (spravka agent list)."),
    task: str = typer.Argument(..., help="What to do, in plain words."),
    actor: str | None = typer.Option(None, "--as", help="Who asks (default: the OS user); kept in the audit log."),
    role: str = typer.Option("admin", "--role", help="The role the run has (tools and limits follow it)."),
    protocol: str | None = typer.Option(None, "--protocol", help="json (one JSON step, a grammar where the server "
                                        "has one) or tools (native tool calling); default: agents.protocol."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Run an agent on a task. Writes wait for approval unless the agent's policy says otherwise."""
    sp = state.spravka()
    if protocol is not None:
        if protocol not in ("json", "tools"):
            raise InputError(f"--protocol is json or tools, not {protocol!r}")
        sp.settings.agents.protocol = protocol  # type: ignore[assignment]
    r = sp.agents.run(name, task, actor=_me(actor), role=role).to_dict()
    print_json(r) if json_out else _show(r)


@agent_app.command("approvals")
def approvals(json_out: bool = typer.Option(False, "--json")) -> None:
    """Actions waiting for a person."""
    items = state.spravka().agents.pending()
    rows = [{"id": i.id, "agent": i.payload["agent"], "asked_by": i.payload["actor"], "tool": i.payload["pending"]["tool"],
             "arguments": i.payload["pending"]["shown"], "task": i.payload["messages"][1]["content"][:200]}
            for i in items]
    if json_out:
        print_json(rows)
        return
    if not rows:
        console.print("[green]нечего одобрять[/]")
        return
    grid(["id", "agent", "asked by", "action", "task"],
         [[r["id"], r["agent"], r["asked_by"], f"{r['tool']} {json.dumps(r['arguments'], ensure_ascii=False)}", r["task"]]
          for r in rows])


@agent_app.command("approve")
def approve(item_id: str = typer.Argument(...), actor: str | None = typer.Option(None, "--as"),
            json_out: bool = typer.Option(False, "--json")) -> None:
    """Approve a waiting action: it runs now, and the agent goes on."""
    r = state.spravka().agents.approve(item_id, _me(actor)).to_dict()
    print_json(r) if json_out else _show(r)


@agent_app.command("reject")
def reject(item_id: str = typer.Argument(...), reason: str = typer.Option("", "--reason"),
           actor: str | None = typer.Option(None, "--as"), json_out: bool = typer.Option(False, "--json")) -> None:
    """Reject a waiting action: the agent is told why and answers without it."""
    r = state.spravka().agents.reject(item_id, _me(actor), reason).to_dict()
    print_json(r) if json_out else _show(r)


@agent_app.command("recover")
def recover(
    min_age: float | None = typer.Option(None, "--min-age", help="Seconds since the approval (default "
                                         "agents.recover_after_s); younger ones may still be running elsewhere."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the interrupted approvals; carry out nothing."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Carry out approved actions whose run stopped with its process (a crash, a deploy), with the
    same idempotency key as the first try, and let each run go on. `spravka serve` does this by itself."""
    agents = state.spravka().agents
    if dry_run:
        rows = [{"id": i.id, "run_id": i.ref, "tool": i.payload["pending"]["tool"], "approved_at": i.updated_at,
                 "approved_by": (i.resolution or {}).get("by") or i.assignee} for i in agents.interrupted(min_age_s=min_age)]
        if json_out:
            print_json(rows)
        elif not rows:
            console.print("[green]прерванных одобрений нет[/]")
        else:
            grid(["approval", "run", "action", "approved", "by"],
                 [[r["id"], r["run_id"] or "", r["tool"], r["approved_at"][:19], r["approved_by"] or ""] for r in rows])
        return
    results = [r.to_dict() for r in agents.recover(min_age_s=min_age)]
    if json_out:
        print_json(results)
        return
    if not results:
        console.print("[green]прерванных одобрений нет[/]")
    for r in results:
        _show(r)


@agent_app.command("trail")
def trail(run_id: str = typer.Argument(...), json_out: bool = typer.Option(False, "--json")) -> None:
    """The audit trail of one run: every step, who asked, who approved."""
    rows = state.spravka().agents.trail(run_id)
    if json_out:
        print_json(rows)
        return
    grid(["time", "event", "step", "tool", "arguments", "outcome", "who"],
         [[e["ts"][:19], e["kind"], str(e.get("step", "")), e.get("tool") or "",
           json.dumps(e.get("arguments"), ensure_ascii=False) if e.get("arguments") else "",
           e.get("outcome") or e.get("status") or "", e.get("approved_by") or e.get("actor") or ""] for e in rows])
