"""Governed agents: what an agent may do is decided by our code, whatever the model proposes.

Two kinds of model here:

* ``Planner`` is a SCRIPTED STAND-IN for the LLM. It plays a fixed plan of steps, so these tests
  check our side of the protocol: argument validation, role limits, the approval policy and
  four eyes, the write limit, invented arguments, repeated calls, rejections, the audit trail and
  secrets masked in it. It validates each step against the schema the runner sends, as a server
  with constrained decoding would, and fails like a server without one when a step does not fit.
* The REAL local model (0.5B) runs the protocol end to end on a read task.

The CRM, ERP and Jira are the scripted stand-in in ``agent_standin.py`` (real ones cannot run
here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from agent_standin import Standin
from helpers import bearer as h
from helpers import closed_port
from pydantic import ValidationError

from spravka.core.errors import ForbiddenError, InputError, ModelOutputError, NotFoundError

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "agents"


class Planner:
    """A scripted stand-in for the LLM (see the module docstring)."""

    name = "scripted-planner"

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        self.steps = list(steps)
        self.seen: list[list[dict[str, str]]] = []
        self.schemas: list[dict[str, Any]] = []

    def chat_json(self, messages, schema, **kw):
        self.seen.append([dict(m) for m in messages])
        self.schemas.append(schema.model_json_schema())
        step = self.steps.pop(0) if self.steps else {"action": "final", "answer": "Готово."}
        try:
            return schema.model_validate({"step": step})
        except ValidationError as e:
            raise ModelOutputError(f"the answer does not fit the schema: {e.errors()[0]['msg']}") from None

    def close(self) -> None:
        pass


class ToolCaller:
    """A scripted stand-in for a server with native tool calling (OpenAI ``tools``): the plan's calls
    in turn. It also checks our side of the protocol: every tool call is answered by a ``tool``
    message with its id before the next assistant turn."""

    name = "scripted-tool-caller"

    def __init__(self, steps: list[Any]) -> None:
        self.steps = list(steps)
        self.seen: list[list[dict[str, Any]]] = []
        self.offered: list[list[str]] = []

    def chat(self, messages, tools=None, tool_choice=None, **kw):
        from spravka.models.chat import ChatResult, ToolCall, Usage

        self.seen.append([dict(m) for m in messages])
        self.offered.append([t["function"]["name"] for t in tools or []])
        waiting: list[str] = []
        for m in messages:
            if m["role"] == "assistant":
                assert not waiting, f"tool calls left unanswered: {waiting}"
                waiting = [c["id"] for c in m.get("tool_calls") or []]
            elif m["role"] == "tool":
                waiting.remove(m["tool_call_id"])
        assert not waiting, f"tool calls left unanswered: {waiting}"
        step = self.steps.pop(0) if self.steps else FINAL
        calls = [] if isinstance(step, dict) and step["action"] == "final" else step if isinstance(step, list) else [step]
        n = len(self.seen)
        return ChatResult(text=step["answer"] if not calls else "", usage=Usage(100, 10), cost=0.0, latency_ms=1.0,
                          model="tools", finish_reason="tool_calls" if calls else "stop",
                          tool_calls=[ToolCall(f"call_{n}_{i}", c["tool"].replace(".", "__"), c["arguments"])
                                      for i, c in enumerate(calls)])

    def close(self) -> None:
        pass


def _home(tmp_path: Path, url: str, **agent_overrides) -> Path:
    folder = tmp_path / "agents"
    folder.mkdir(parents=True, exist_ok=True)
    for f in SAMPLES.glob("*.yaml"):
        (folder / f.name).write_text(f.read_text(encoding="utf-8").replace("http://127.0.0.1:8765", url),
                                     encoding="utf-8")
    return folder


def _app(tmp_path: Path, url: str, planner: Planner | None = None, **settings):
    from spravka.app import Spravka
    from spravka.core.settings import Settings

    _home(tmp_path, url)
    app = Spravka(Settings(home=tmp_path, embedder={"provider": "use"}, **settings))
    if planner is not None:
        app.__dict__["llm"] = planner
    return app


@pytest.fixture
def systems(monkeypatch):
    monkeypatch.setenv("SPRAVKA_CRM_TOKEN", "crm-secret-token")
    monkeypatch.setenv("SPRAVKA_JIRA_BASIC", "amlyYTpqaXJh")
    with Standin() as s:
        yield s


def _tool(name: str, **arguments) -> dict[str, Any]:
    return {"action": "tool", "tool": name, "arguments": arguments}


FINAL = {"action": "final", "answer": "Готово."}


def test_the_sample_agent_loads_and_bad_specs_are_refused_clearly(tmp_path):
    from spravka.agents import load_folder

    agents, connectors = load_folder(SAMPLES)
    assert list(agents) == ["support"] and sorted(connectors) == ["crm", "erp", "jira"]

    def bad(text: str) -> str:
        folder = tmp_path / f"bad{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "x.yaml").write_text(text, encoding="utf-8")
        with pytest.raises(InputError) as e:
            load_folder(folder)
        return e.value.message

    assert "not among the agent's tools" in bad(
        "kind: agent\nname: a\ninstructions: Помогай людям\ntools: [kb.search]\napproval: {erp.refund: never}\n")
    assert "cannot write" in bad("kind: connector\nname: c\nbase_url: http://x\noperations:\n"
                                 "  op: {description: d, method: GET, path: /x, effect: write}\n")
    assert "not among the params" in bad("kind: connector\nname: c\nbase_url: http://x\noperations:\n"
                                         "  op: {description: d, path: '/x/{id}'}\n")
    assert "kind: agent or kind: connector" in bad("name: a\n")


def test_reads_run_at_once_writes_wait_for_someone_else_and_run_once_when_approved(tmp_path, systems):
    planner = Planner([_tool("crm.find_customer", phone="+79161234567"), _tool("erp.order_status", order_id="77-2051"),
                       _tool("erp.refund", order_id="77-2051", amount=12490, reason="сломался чайник"),
                       {"action": "final", "answer": "Возврат 12490 ₽ по заказу 77-2051 оформлен."}])
    app = _app(tmp_path, systems.url, planner)
    try:
        r = app.agents.run("support", "Верни деньги за заказ 77-2051, клиентка +79161234567", actor="ivan",
                           role="editor")
        assert r.status == "awaiting_approval" and r.pending == {
            "tool": "erp.refund", "arguments": {"order_id": "77-2051", "amount": 12490.0, "reason": "сломался чайник"}}
        assert [s["outcome"] for s in r.steps] == ["ok", "ok", "awaiting_approval"]
        assert systems.refunds == []  # 12490 > 3000: nothing is paid before a person says yes
        assert systems.requests[0]["auth"] == "Bearer crm-secret-token"  # from the environment, at call time
        assert [i.id for i in app.agents.pending()] == [r.approval_id]

        with pytest.raises(ForbiddenError, match="own"):
            app.agents.approve(r.approval_id, "ivan")  # four eyes
        done = app.agents.approve(r.approval_id, "olga")
        assert done.status == "done" and done.answer.startswith("Возврат 12490")
        assert len(systems.refunds) == 1 and systems.refunds[0]["amount"] == 12490
        assert systems.requests[-1]["idempotency_key"] == f"spravka-{r.run_id}-3"
        with pytest.raises(InputError, match="already"):
            app.agents.approve(r.approval_id, "olga")  # approving twice does not pay twice
        assert len(systems.refunds) == 1

        trail = app.agents.trail(r.run_id)
        steps = [(e["kind"], e.get("tool"), e.get("outcome") or e.get("status")) for e in trail]
        assert steps == [("agent.step", "crm.find_customer", "ok"), ("agent.step", "erp.order_status", "ok"),
                         ("agent.step", "erp.refund", "awaiting_approval"), ("agent.run", None, "awaiting_approval"),
                         ("agent.step", "erp.refund", "ok"), ("agent.run", None, "done")]
        assert trail[4]["approved_by"] == "olga" and all(e["actor"] == "ivan" for e in trail)
        # the model was told the tool results as data
        assert any("12490" in m["content"] and m["role"] == "user" for m in planner.seen[2])
    finally:
        app.close()


def test_a_small_refund_of_a_looked_up_amount_runs_without_a_person(tmp_path, systems):
    planner = Planner([_tool("erp.order_status", order_id="77-2052"),
                       _tool("erp.refund", order_id="77-2052", amount=2190, reason="отказ от заказа"), FINAL])
    app = _app(tmp_path, systems.url, planner)
    try:
        r = app.agents.run("support", "Клиент отказался от заказа 77-2052, верни деньги", actor="ivan", role="editor")
        assert r.status == "done" and [s["outcome"] for s in r.steps] == ["ok", "ok"]
        assert systems.refunds[0]["amount"] == 2190 and app.agents.pending() == []
    finally:
        app.close()


def test_invented_arguments_repeated_calls_and_the_write_limit_are_refused(tmp_path, systems):
    planner = Planner([
        _tool("erp.refund", order_id="77-2051", amount=100, reason="сломался"),  # 100 ₽: nobody looked it up
        _tool("erp.refund", order_id="77-2051", amount=100, reason="сломался"),  # our refusal quoted it: still no
        _tool("erp.order_status", order_id="77-2052"),
        _tool("erp.order_status", order_id="77-2052"),  # the same call again
        _tool("erp.refund", order_id="77-2052", amount=2190, reason="a"),
        _tool("jira.create_issue", summary="Проверить возврат", description="по заказу 77-2052"),
        _tool("jira.create_issue", summary="Ещё одна задача"),  # the third write of the run
        FINAL])
    app = _app(tmp_path, systems.url, planner)
    try:
        r = app.agents.run("support", "Верни деньги за 77-2051 и 77-2052", actor="ivan", role="editor")
        outcomes = [(s["tool"], s["outcome"]) for s in r.steps]
        assert outcomes == [("erp.refund", "ungrounded"), ("erp.refund", "ungrounded"), ("erp.order_status", "ok"),
                            ("erp.order_status", "repeat"),
                            ("erp.refund", "ok"), ("jira.create_issue", "ok"), ("jira.create_issue", "limit")]
        assert [x["amount"] for x in systems.refunds] == [2190] and len(systems.issues) == 1
        assert systems.issues[0]["fields"]["project"] == {"key": "SUP"}  # Jira's nested body from the template
        assert "amount=100" in r.steps[0]["result"]
    finally:
        app.close()


def test_a_model_that_keeps_repeating_itself_is_made_to_answer(tmp_path, systems):
    planner = Planner([_tool("erp.order_status", order_id="77-2052")] * 3 + [
        _tool("erp.order_status", order_id="77-2052"), {"action": "final", "answer": "Заказ в пути."}])
    app = _app(tmp_path, systems.url, planner)
    try:
        r = app.agents.run("support", "Где заказ 77-2052?", actor="ivan", role="editor")
        assert r.status == "done" and r.answer == "Заказ в пути."
        # after two repeats the step schema offers the final answer only, so the 4th call cannot be made
        assert [s["outcome"] for s in r.steps] == ["ok", "repeat", "repeat", "invalid"]
        assert "Call_erp_order_status" not in json.dumps(planner.schemas[-1])
    finally:
        app.close()


def test_role_limits_decide_which_tools_a_run_may_even_propose(tmp_path, systems):
    change = _tool("crm.update_address", customer_id="c-17", address="Казань, ул. Пушкина, 5")
    planner = Planner([change, FINAL])
    app = _app(tmp_path, systems.url, planner)
    try:
        r = app.agents.run("support", "Смени адрес клиента c-17 на Казань, ул. Пушкина, 5", actor="ivan",
                           role="editor")
        assert "crm.update_address" not in json.dumps(planner.schemas[0])  # not offered to an editor's run
        assert r.steps[0]["outcome"] == "invalid" and not any(q["method"] == "PATCH" for q in systems.requests)
        with pytest.raises(ForbiddenError):
            app.agents.run("support", "Что с заказом 77-2052?", actor="widget", role="user")

        planner.steps = [change, FINAL]
        r = app.agents.run("support", "Смени адрес клиента c-17 на Казань, ул. Пушкина, 5", actor="olga", role="admin")
        assert r.status == "awaiting_approval"  # an administrator's run may propose it; a person still approves
        rejected = app.agents.reject(r.approval_id, "pavel", "клиент передумал")
        assert rejected.status == "done" and rejected.steps[-1]["outcome"] == "rejected"
        assert systems.customers["c-17"]["address"] == "Казань, ул. Баумана, 12"
        assert "клиент передумал" in planner.seen[-1][-1]["content"]  # the model is told why
    finally:
        app.close()


def test_a_dead_system_and_a_missing_secret_are_told_to_the_model_and_audited(tmp_path, systems, monkeypatch):
    dead = f"http://127.0.0.1:{closed_port()}"
    planner = Planner([_tool("erp.order_status", order_id="77-2052"), _tool("crm.find_customer", phone="+79161234567"),
                       {"action": "final", "answer": "ERP недоступна."}])
    app = _app(tmp_path, systems.url, planner)
    erp = tmp_path / "agents" / "erp.yaml"
    erp.write_text(erp.read_text(encoding="utf-8").replace(systems.url, dead), encoding="utf-8")
    monkeypatch.delenv("SPRAVKA_CRM_TOKEN")
    try:
        r = app.agents.run("support", "Где заказ 77-2052?", actor="ivan", role="editor")
        assert r.status == "done" and [s["outcome"] for s in r.steps] == ["error", "error"]
        assert "unreachable" in r.steps[0]["result"] and dead in r.steps[0]["result"]
        assert "SPRAVKA_CRM_TOKEN" in r.steps[1]["result"] and systems.requests == []
        assert [e["outcome"] for e in app.agents.trail(r.run_id) if e["kind"] == "agent.step"] == ["error", "error"]
        with pytest.raises(NotFoundError, match="no agent"):
            app.agents.run("sales", "x", actor="ivan", role="admin")
        with pytest.raises(InputError, match="empty"):
            app.agents.run("support", "  ", actor="ivan", role="admin")
    finally:
        app.close()


def test_secret_arguments_are_masked_in_the_audit_log_and_the_approval(tmp_path, systems):
    pay = tmp_path / "agents"
    app = _app(tmp_path, systems.url, Planner([_tool("pay.charge", card="4111111111111111", amount=500), FINAL]))
    (pay / "pay.yaml").write_text(
        "kind: connector\nname: pay\nbase_url: " + systems.url + "/pay\noperations:\n  charge:\n"
        "    description: Списать деньги с карты.\n    method: POST\n    path: /charges\n    body: [card, amount]\n"
        "    effect: write\n    params:\n      card: {type: string, required: true, secret: true}\n"
        "      amount: {type: number, required: true}\n", encoding="utf-8")
    (pay / "cashier.yaml").write_text("kind: agent\nname: cashier\ninstructions: Принимай оплату по просьбе.\n"
                                      "tools: [pay.charge]\n", encoding="utf-8")
    try:
        r = app.agents.run("cashier", "Спиши 500 с карты 4111111111111111", actor="ivan", role="admin")
        assert r.status == "awaiting_approval" and r.pending["arguments"]["card"] == "***"
        logged = json.dumps(list(app.store.events("agent.step")), ensure_ascii=False)
        assert "4111111111111111" not in logged and "***" in logged
        item = app.inbox.get(r.approval_id)
        assert item.payload["pending"]["shown"]["card"] == "***"
    finally:
        app.close()


def test_the_http_api_runs_approves_and_shows_the_trail(tmp_path, systems):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from spravka.api import create_app

    planner = Planner([_tool("erp.order_status", order_id="77-2051"),
                       _tool("erp.refund", order_id="77-2051", amount=12490, reason="брак"), FINAL])
    app = _app(tmp_path, systems.url, planner)
    editor, _ = app.keys.create("ivan", "editor")
    user, _ = app.keys.create("widget", "user")
    admin, _ = app.keys.create("olga", "admin")
    try:
        with TestClient(create_app(app, resume_jobs=False)) as client:
            assert [a["name"] for a in client.get("/v1/agents", headers=h(editor)).json()["agents"]] == ["support"]
            assert client.post("/v1/agents/support/runs", json={"task": "x"}, headers=h(user)).status_code == 403
            r = client.post("/v1/agents/support/runs", json={"task": "Верни деньги за заказ 77-2051"}, headers=h(editor))
            body = r.json()
            assert r.status_code == 200 and body["status"] == "awaiting_approval", body
            approve = f"/v1/agents/approvals/{body['approval_id']}/approve"
            assert client.post(approve, headers=h(editor)).status_code == 403  # approving is the inbox's
            done = client.post(approve, headers=h(admin))
            assert done.status_code == 200 and done.json()["status"] == "done"
            assert len(systems.refunds) == 1
            trail = client.get(f"/v1/agents/runs/{body['run_id']}", headers=h(editor)).json()["events"]
            assert [e.get("approved_by") for e in trail if e.get("outcome") == "ok"][-1] == "olga"
            other, _ = app.keys.create("pavel", "editor")
            assert client.get(f"/v1/agents/runs/{body['run_id']}", headers=h(other)).json()["events"] == []
            missing = client.post("/v1/agents/nope/runs", json={"task": "x"}, headers=h(editor))
            assert missing.status_code == 404
    finally:
        app.close()


def test_a_tool_budget_across_runs_stops_the_call_that_would_break_it_even_after_approval(tmp_path, systems):
    refund = lambda order, amount: _tool("erp.refund", order_id=order, amount=amount, reason="брак")  # noqa: E731
    planner = Planner([refund("77-2052", 2190), FINAL, refund("77-2053", 2190), FINAL,
                       refund("77-2054", 900), FINAL, refund("77-2055", 600), FINAL])
    app = _app(tmp_path, systems.url, planner)
    spec = tmp_path / "agents" / "support.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + "  budgets:\n    erp.refund: {per: day, calls: 4, sum: {amount: 5000}}\n",
                    encoding="utf-8")
    try:
        def ask(order: str, amount: int):
            return app.agents.run("support", f"Верни {amount} ₽ за заказ {order}", actor="ivan", role="editor")

        assert ask("77-2052", 2190).steps[0]["outcome"] == "ok"
        assert ask("77-2053", 2190).steps[0]["outcome"] == "ok"
        third = ask("77-2054", 900)  # 4380 + 900 > 5000 ₽ a day: refused before anyone is asked
        assert third.steps[0]["outcome"] == "limit" and "5000" in third.steps[0]["result"]
        assert len(systems.refunds) == 2 and app.agents.pending() == []
        assert "исчерпан" in planner.seen[-1][-1]["content"]  # the model is told, and tells the user
        fourth = ask("77-2055", 600)  # 4980 ≤ 5000: fits
        assert fourth.steps[0]["outcome"] == "ok" and len(systems.refunds) == 3
        # An approval made while the budget allowed it cannot be carried out once it does not.
        planner.steps = [refund("77-2051", 20)]
        spec.write_text(spec.read_text(encoding="utf-8").replace("erp.refund: {over: {amount: 3000}}",
                                                                 "erp.refund: always"), encoding="utf-8")
        app.agents._loaded, app.agents._tools = None, {}
        app.store.log_event("agent.step", {"agent": "other", "tool": "erp.refund", "outcome": "ok", "arguments": {}})
        waiting = ask("77-2051", 20)  # 4 calls a day, 5000 ₽: the 4th call, 5000 ₽ in all
        assert waiting.status == "awaiting_approval"  # a budget of another agent does not count
        app.agents.settings.four_eyes = False
        spec.write_text(spec.read_text(encoding="utf-8").replace("calls: 4", "calls: 3"), encoding="utf-8")
        app.agents._loaded, app.agents._tools = None, {}
        with pytest.raises(ForbiddenError, match="исчерпан"):
            app.agents.approve(waiting.approval_id, "olga")
        assert [i.id for i in app.agents.pending()] == [waiting.approval_id] and len(systems.refunds) == 3
    finally:
        app.close()

    bad = tmp_path / "bad"
    bad.mkdir()
    for f in SAMPLES.glob("*.yaml"):
        (bad / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    (bad / "support.yaml").write_text((SAMPLES / "support.yaml").read_text(encoding="utf-8")
                                      + "  budgets:\n    erp.refund: {sum: {total: 10}}\n", encoding="utf-8")
    from spravka.agents import Agents
    from spravka.core.errors import ConfigError
    from spravka.core.settings import AgentsSettings

    agents = Agents(bad, lambda: None, lambda *a: [], None, log_event=print, events=lambda *a, **k: [],  # type: ignore[arg-type]
                    settings=AgentsSettings())
    with pytest.raises(ConfigError, match="'total'"):
        agents.tools_for(agents.agent("support"), "editor")


def test_two_approvals_at_the_same_moment_cannot_both_spend_the_last_of_a_budget(tmp_path, systems, monkeypatch):
    from spravka.agents import runner

    refund = lambda order: _tool("erp.refund", order_id=order, amount=2190, reason="брак")  # noqa: E731
    planner = Planner([refund("77-2052"), refund("77-2053")])
    app = _app(tmp_path, systems.url, planner)
    app.agents.settings.four_eyes = False
    spec = tmp_path / "agents" / "support.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("erp.refund: {over: {amount: 3000}}", "erp.refund: always")
                    + "  budgets:\n    erp.refund: {per: day, sum: {amount: 3000}}\n", encoding="utf-8")
    try:
        first = app.agents.run("support", "Верни 2190 ₽ за заказ 77-2052", actor="ivan", role="editor")
        second = app.agents.run("support", "Верни 2190 ₽ за заказ 77-2053", actor="ivan", role="editor")
        assert first.status == second.status == "awaiting_approval"  # each fits alone, not both

        # Both approvals pass their check at once: the second is approved while the first is between
        # its check and its call (another thread or server in real life).
        real, raced = runner.Agents._reserve, []

        def reserve(self, spec_, state, tool, args):
            if not raced:
                raced.append(True)
                planner.steps = [FINAL]
                raced.append(app.agents.approve(second.approval_id, "olga"))
            return real(self, spec_, state, tool, args)

        monkeypatch.setattr(runner.Agents, "_reserve", reserve)
        planner.steps = [FINAL]
        done = app.agents.approve(first.approval_id, "olga")
        assert raced[1].steps[-1]["outcome"] == "ok"  # the second went out first…
        assert done.steps[-1]["outcome"] == "limit" and "3000" in done.steps[-1]["result"]  # …so the first may not
        assert [r["order_id"] for r in systems.refunds] == ["77-2053"]
        assert app.agents.budget_used(app.agents.agent("support"), "erp.refund")["sum"]["amount"] == [2190, 3000]
    finally:
        app.close()


def test_a_call_in_flight_holds_its_share_of_the_budget_until_its_step_settles_it(tmp_path, systems):
    app = _app(tmp_path, systems.url, Planner([FINAL]))
    spec = tmp_path / "agents" / "support.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + "  budgets:\n    erp.refund: {per: day, calls: 5, sum: {amount: 3000}}\n",
                    encoding="utf-8")
    try:
        support = app.agents.agent("support")

        def hold(run: str, amount: int) -> int:
            return app.store.log_event("agent.budget", {"run_id": run, "step": 1, "agent": "support",
                                                        "tool": "erp.refund", "arguments": {"amount": amount}})

        a, b = hold("a", 1000), hold("b", 1500)
        assert app.agents.budget_used(support, "erp.refund")["sum"]["amount"] == [2500, 3000]  # both in flight
        assert app.agents.budget_used(support, "erp.refund", held_before=b)["sum"]["amount"][0] == 1000
        assert app.agents.budget_used(support, "erp.refund", held_before=a)["sum"]["amount"][0] == 0
        assert app.agents.budget_used(support, "erp.refund", own=("b", 1))["sum"]["amount"][0] == 1000  # its retry
        # "a" failed (its step settles the hold, and an error spends nothing); "b" went through
        app.store.log_event("agent.step", {"run_id": "a", "step": 1, "agent": "support", "tool": "erp.refund",
                                           "outcome": "error", "arguments": {"amount": 1000}})
        app.store.log_event("agent.step", {"run_id": "b", "step": 1, "agent": "support", "tool": "erp.refund",
                                           "outcome": "ok", "arguments": {"amount": 1500}})
        assert app.agents.budget_used(support, "erp.refund") == {"per": "day", "calls": [1, 5],
                                                                 "sum": {"amount": [1500, 3000]}}
    finally:
        app.close()


def test_native_tool_calling_runs_the_same_governed_path(tmp_path, systems):
    """``agents.protocol: tools``: the model calls tools natively; validation, grounding, approval
    and the trail are the same as with the JSON protocol."""
    look = _tool("erp.order_status", order_id="77-2051")
    refund = _tool("erp.refund", order_id="77-2051", amount=12490, reason="брак")
    invented = _tool("erp.refund", order_id="77-2051", amount=99999, reason="брак")
    caller = ToolCaller([[look, refund],  # two calls at once: one is taken per step
                         invented, refund])
    app = _app(tmp_path, systems.url, agents={"protocol": "tools"})
    app.__dict__["llm"] = caller
    try:
        r = app.agents.run("support", "Верни деньги за заказ 77-2051, товар с браком", actor="ivan", role="editor")
        assert r.status == "awaiting_approval", r.to_dict()
        assert [(s["tool"], s["outcome"]) for s in r.steps] == [
            ("erp.order_status", "ok"), ("erp.refund", "ungrounded"), ("erp.refund", "awaiting_approval")]
        assert "erp__refund" in caller.offered[0] and "JSON" not in caller.seen[0][0]["content"]
        first = caller.seen[1]
        assert [m["role"] for m in first[-2:]] == ["assistant", "tool"] and len(first[-2]["tool_calls"]) == 1
        assert json.loads(first[-1]["content"])["outcome"] == "ok" and "77-2051" in first[-1]["content"]
        assert "99999" in caller.seen[2][-1]["content"] and systems.refunds == []

        as_text = '{"name": "jira__create_issue", "arguments": {"summary": "возврат"}}'  # a call written out
        caller.steps = [{"action": "final", "answer": as_text}, {"action": "final", "answer": "Возврат 12490 ₽ оформлен."}]
        done = app.agents.approve(r.approval_id, "olga")
        assert done.status == "done" and done.answer == "Возврат 12490 ₽ оформлен."
        assert done.steps[-1]["outcome"] == "invalid" and "текстом" in done.steps[-1]["result"]
        assert len(systems.refunds) == 1 and done.steps[-2]["approved_by"] == "olga"
        paid = caller.seen[-2][-1]  # what the model saw right after the approved call
        assert paid["role"] == "tool" and json.loads(paid["content"])["outcome"] == "ok"
        assert [e["status"] for e in app.agents.trail(r.run_id) if e["kind"] == "agent.run"] == [
            "awaiting_approval", "done"]
    finally:
        app.close()


class _Killed(BaseException):
    """The process stops here (like kill -9: no handler runs, nothing after it is written)."""


def _interrupted_refund(tmp_path, systems, monkeypatch, *, after_the_system: bool):
    """A run whose 12490 ₽ refund waits; it is approved, and the process dies (see below)."""
    plan = [_tool("erp.order_status", order_id="77-2051"),
            _tool("erp.refund", order_id="77-2051", amount=12490, reason="брак")]
    app = _app(tmp_path, systems.url, Planner(plan))
    r = app.agents.run("support", "Верни деньги за заказ 77-2051", actor="ivan", role="editor")
    _approve_and_die(app, r.approval_id, monkeypatch, after_the_system=after_the_system)
    app.close()
    return r


def _approve_and_die(app, approval_id: str, monkeypatch, *, after_the_system: bool) -> None:
    """Approve, and stop the process before (or just after) the action reaches the system."""
    from spravka.agents import runner

    def die(*a, **kw):
        raise _Killed

    if after_the_system:  # the refund is paid; the process dies before it writes the step down
        real = runner.Agents._observe

        def observe(self, state, name, args, outcome, text, **kw):
            if kw.get("approved_by"):
                raise _Killed
            return real(self, state, name, args, outcome, text, **kw)

        monkeypatch.setattr(runner.Agents, "_observe", observe)
    else:
        monkeypatch.setattr(runner.Agents, "_execute", die)
    with pytest.raises(_Killed):
        app.agents.approve(approval_id, "olga")
    monkeypatch.undo()


@pytest.mark.parametrize("after_the_system", [False, True], ids=["before-the-system", "after-the-system"])
def test_an_approval_interrupted_by_a_crash_is_carried_out_once_by_the_next_process(
        tmp_path, systems, monkeypatch, after_the_system):
    r = _interrupted_refund(tmp_path, systems, monkeypatch, after_the_system=after_the_system)
    assert len(systems.refunds) == (1 if after_the_system else 0)

    # the next process: the approval is closed, so nobody can approve it again, and the run never went on
    planner = Planner([{"action": "final", "answer": "Возврат оформлен."}])
    app = _app(tmp_path, systems.url, planner)
    try:
        assert app.agents.pending() == []
        assert app.agents.interrupted() == []  # younger than agents.recover_after_s: maybe still running
        assert [i.id for i in app.agents.interrupted(min_age_s=0)] == [r.approval_id]
        [done] = app.agents.recover(min_age_s=0)
        assert done.run_id == r.run_id and done.status == "done" and done.answer == "Возврат оформлен."
        assert len(systems.refunds) == 1  # paid once: the retry went out with the first try's key
        keys = [q["idempotency_key"] for q in systems.requests if q["path"] == "/erp/refunds"]
        assert keys == [f"spravka-{r.run_id}-2"] * (2 if after_the_system else 1)
        trail = app.agents.trail(r.run_id)
        paid = [e for e in trail if e.get("tool") == "erp.refund" and e.get("outcome") == "ok"]
        assert len(paid) == 1 and paid[0]["approved_by"] == "olga" and paid[0]["recovered"] is True
        assert trail[-1]["kind"] == "agent.run" and trail[-1]["status"] == "done"
        assert app.agents.interrupted(min_age_s=0) == [] and app.agents.recover(min_age_s=0) == []  # once
    finally:
        app.close()


def test_recovery_finds_an_approval_asked_for_long_ago_among_many_decided_since(tmp_path, systems, monkeypatch):
    import datetime as dt

    r = _interrupted_refund(tmp_path, systems, monkeypatch, after_the_system=False)
    app = _app(tmp_path, systems.url, Planner([FINAL]))

    def ago(**kw: float) -> str:
        return (dt.datetime.now(dt.UTC) - dt.timedelta(**kw)).isoformat(timespec="seconds")

    try:
        # the refund was asked for yesterday and approved just before the crash; 600 other
        # approvals were asked for and decided since (recovery used to read the 500 newest only)
        app.inbox.db.execute("UPDATE inbox SET created_at=? WHERE id=?", (ago(days=1), r.approval_id))
        priority = app.inbox.get(r.approval_id).priority
        for n in range(600):
            other = app.inbox.add("approval", f"другое действие {n}", {}, ref=f"run-{n}", priority=priority)
            app.inbox.resolve(other.id, {"approved": n % 2 == 0}, "olga")
        assert [i.id for i in app.agents.interrupted(min_age_s=0)] == [r.approval_id]
        # one decided before agents.recover_within_s is left to a person
        app.inbox.db.execute("UPDATE inbox SET updated_at=? WHERE id=?", (ago(days=31), r.approval_id))
        assert app.agents.interrupted(min_age_s=0) == []
        app.settings.agents.recover_within_s = 40 * 86400
        [done] = app.agents.recover(min_age_s=0)
        assert done.run_id == r.run_id and done.status == "done" and len(systems.refunds) == 1
    finally:
        app.close()


def test_two_processes_recovering_the_same_approval_at_once_carry_it_out_once(tmp_path, systems, monkeypatch):
    r = _interrupted_refund(tmp_path, systems, monkeypatch, after_the_system=False)
    first = _app(tmp_path, systems.url, Planner([{"action": "final", "answer": "Возврат оформлен."}]))
    second = _app(tmp_path, systems.url, Planner([{"action": "final", "answer": "Возврат оформлен дважды."}]))
    try:
        # both look at the same moment and both see the approval; the first one gets going first
        seen = second.agents.interrupted(min_age_s=0)
        assert [i.id for i in seen] == [r.approval_id]
        [done] = first.agents.recover(min_age_s=0)
        assert done.status == "done" and done.answer == "Возврат оформлен."
        monkeypatch.setattr(second.agents, "interrupted", lambda **kw: seen)  # what it saw before the claim
        assert second.agents.recover(min_age_s=0) == []
        assert len(systems.refunds) == 1
        assert [q["path"] for q in systems.requests].count("/erp/refunds") == 1
        trail = second.agents.trail(r.run_id)
        assert [e["status"] for e in trail if e["kind"] == "agent.run"][-1] == "done"
        assert sum(e.get("status") == "done" for e in trail if e["kind"] == "agent.run") == 1
        claims = first.inbox.get(r.approval_id).resolution["follow_ups"]
        assert [c["key"] for c in claims] == ["recover-0"] and claims[0]["recovering"].endswith(f":{os.getpid()}")
    finally:
        first.close()
        second.close()


def test_a_recovery_claim_keeps_other_processes_off_until_it_is_as_old_as_recover_after_s(
        tmp_path, systems, monkeypatch):
    r = _interrupted_refund(tmp_path, systems, monkeypatch, after_the_system=False)
    app = _app(tmp_path, systems.url, Planner([FINAL]))
    try:
        # a process claimed it and died before it carried it out: nobody else touches it for a while…
        assert app.inbox.follow_up(r.approval_id, {"recovering": "elsewhere:1"}, key="recover-0")
        assert app.agents.interrupted(min_age_s=60) == []
        # …then the next try claims it under its own key and carries it out
        [done] = app.agents.recover(min_age_s=0)
        assert done.status == "done" and len(systems.refunds) == 1
        keys = [c["key"] for c in app.inbox.get(r.approval_id).resolution["follow_ups"]]
        assert keys == ["recover-0", "recover-1"]
    finally:
        app.close()


def test_the_server_carries_out_an_interrupted_approval_when_it_starts(tmp_path, systems, monkeypatch):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from spravka.api import create_app

    r = _interrupted_refund(tmp_path, systems, monkeypatch, after_the_system=False)

    app = _app(tmp_path, systems.url, Planner([FINAL]))  # recover_after_s 900: too young to carry out yet
    admin, _ = app.keys.create("olga", "admin")
    try:
        with TestClient(create_app(app, resume_jobs=True)) as c:
            c.post("/admin/login", data={"key": admin})
            page = c.get("/admin/inbox").text
        assert "прервано сбоем" in page and systems.refunds == []  # the console says so; nothing ran yet
    finally:
        app.close()

    app = _app(tmp_path, systems.url, Planner([FINAL]), agents={"recover_after_s": 0})
    try:
        with TestClient(create_app(app, resume_jobs=True)):
            deadline = time.monotonic() + 30
            while not systems.refunds and time.monotonic() < deadline:
                time.sleep(0.1)
        assert len(systems.refunds) == 1
        assert app.agents.trail(r.run_id)[-1]["status"] == "done"
    finally:
        app.close()


@pytest.mark.llm
@pytest.mark.parametrize("protocol", ["json", "tools"])
def test_the_real_local_model_looks_up_an_order_through_the_protocol(tmp_path, systems, llm_server, protocol):
    app = _app(tmp_path, systems.url, llm={"provider": "llamacpp", "base_url": llm_server.base_url, "timeout_s": 120},
               agents={"protocol": protocol} | ({"max_tokens": 200} if protocol == "tools" else {}))
    if protocol == "tools":  # unconstrained, the 0.5B wanders on after the lookup: two steps are enough here
        spec = tmp_path / "agents" / "support.yaml"
        spec.write_text(spec.read_text(encoding="utf-8").replace("max_steps: 8", "max_steps: 2"), encoding="utf-8")
    try:
        r = app.agents.run("support", "Какой статус у заказа 77-2052?", actor="ivan", role="editor")
        assert r.steps and r.steps[0]["tool"] == "erp.order_status", r.to_dict()
        assert r.steps[0]["arguments"] == {"order_id": "77-2052"} and r.steps[0]["outcome"] == "ok"
        assert r.status in ("done", "stopped") and systems.refunds == []  # a read task writes nothing
        assert {e["kind"] for e in app.agents.trail(r.run_id)} == {"agent.step", "agent.run"}
    finally:
        app.close()


def test_the_cli_lists_agents_and_reports_a_dead_llm_clearly(tmp_path, systems):
    _home(tmp_path / "home", systems.url)
    port = closed_port()
    env = {**os.environ, "SPRAVKA_HOME": str(tmp_path / "home"), "SPRAVKA_LLM__PROVIDER": "llamacpp",
           "SPRAVKA_LLM__BASE_URL": f"http://127.0.0.1:{port}/v1", "SPRAVKA_LLM__TIMEOUT_S": "5"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "spravka", "agent", *args], capture_output=True, text=True,
                              timeout=300, env=env, cwd=ROOT)

    p = run("list", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)[0]["name"] == "support"
    p = run("run", "support", "Где заказ 77-2052?")
    assert p.returncode != 0 and "127.0.0.1" in p.stderr and systems.requests == []
    p = run("run", "support", "Где заказ 77-2052?", "--protocol", "tools")  # the same dead server, the other way
    assert p.returncode != 0 and "127.0.0.1" in p.stderr and systems.requests == []
    p = run("run", "support", "Где заказ 77-2052?", "--protocol", "xml")
    assert p.returncode != 0 and "json or tools" in p.stderr
    p = run("approvals", "--json")
    assert p.returncode == 0 and json.loads(p.stdout) == []
