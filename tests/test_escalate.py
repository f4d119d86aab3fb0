"""Escalations: the operator queue, Jira Service Management, Zendesk and a webhook as outbox
targets. The outside systems are scripted **stand-ins** on loopback: they check each request's
shape, fail with 500 for a while, and dedup by the idempotency key like the real services should,
so the tests can assert exactly one ticket after failures, a process restart and a kill -9."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from spravka.app import Spravka
from spravka.core.settings import Settings
from spravka.store.queues import InboxState, OutboxState

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "kb" / "customers"
SECRET = "hook-secret"


class StandIn:
    """A stand-in for Jira Service Management, Zendesk or a webhook receiver.

    ``fail``: the first N requests get 500. ``hang``: the first accepted request creates the
    ticket and then hangs for that many seconds before answering (a sender killed meanwhile never
    learns it succeeded). Tickets are keyed by ``Idempotency-Key``: a repeat returns the ticket
    already made."""

    def __init__(self, kind: str, *, fail: int = 0, hang: float = 0.0) -> None:
        self.kind, self.fail, self.hang = kind, fail, hang
        self.requests: list[dict] = []
        self.tickets: dict[str, dict] = {}
        self.problems: list[str] = []
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, body = me.handle(self.path, dict(self.headers), raw)
                if status == "hang":
                    time.sleep(me.hang)
                    status = 201
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body).encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def check(self, path: str, headers: dict, raw: bytes) -> str | None:
        try:
            body = json.loads(raw)
        except ValueError:
            return "not JSON"
        auth = headers.get("Authorization", "")
        if self.kind == "jira":
            if path != "/rest/servicedeskapi/request":
                return f"path {path}"
            if auth != "Basic " + base64.b64encode(b"bot@corp.ru:jira-token").decode():
                return "auth"
            f = body.get("requestFieldValues") or {}
            if body.get("serviceDeskId") != "7" or body.get("requestTypeId") != "42" or not f.get("summary") \
                    or "Вопрос:" not in f.get("description", ""):
                return "fields"
        elif self.kind == "zendesk":
            if path != "/api/v2/tickets.json":
                return f"path {path}"
            if auth != "Basic " + base64.b64encode(b"bot@corp.ru/token:zd-token").decode():
                return "auth"
            t = body.get("ticket") or {}
            if not t.get("subject") or "Вопрос:" not in (t.get("comment") or {}).get("body", "") \
                    or t.get("external_id") != headers.get("Idempotency-Key"):
                return "fields"
        else:
            sig = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
            if headers.get("X-Spravka-Signature") != sig or not body.get("escalation_id") or not body.get("question"):
                return "webhook body or signature"
        if not headers.get("Idempotency-Key"):
            return "no Idempotency-Key"
        return None

    def handle(self, path: str, headers: dict, raw: bytes):
        key = headers.get("Idempotency-Key", "")
        self.requests.append({"path": path, "key": key})
        problem = self.check(path, headers, raw)
        if problem:
            self.problems.append(problem)
            return 400, {"error": problem}
        if self.fail > 0:
            self.fail -= 1
            return 500, {"error": "stand-in is down"}
        if key in self.tickets:
            return 200, self.tickets[key]
        n = len(self.tickets) + 1
        ticket = {"jira": {"issueKey": f"SD-{n}", "issueId": str(1000 + n)},
                  "zendesk": {"ticket": {"id": 500 + n}}}.get(self.kind, {"ok": True, "n": n})
        self.tickets[key] = ticket
        if self.hang:
            return "hang", ticket
        return 201, ticket

    def close(self) -> None:
        self.server.shutdown()


def settings_for(home: Path, jira: StandIn, zendesk: StandIn, webhook: StandIn, **kw) -> Settings:
    return Settings(home=home, embedder={"provider": "use"}, answer={"mode": "extractive"},
                    escalate={"targets": ["jira", "zendesk", "webhook"],
                              "jira": {"base_url": jira.url, "service_desk_id": "7", "request_type_id": "42",
                                       "email": "bot@corp.ru", "api_token": "jira-token"},
                              "zendesk": {"base_url": zendesk.url, "email": "bot@corp.ru", "api_token": "zd-token"},
                              "webhook_url": f"{webhook.url}/hook", "webhook_secret": SECRET},
                    delivery={"base_delay_s": 0.05, "max_delay_s": 0.2, "lease_s": 1.0, "interval_s": 0.05}, **kw)


@pytest.fixture
def stand_ins():
    ins = {"jira": StandIn("jira", fail=3), "zendesk": StandIn("zendesk", fail=2), "webhook": StandIn("webhook", fail=4)}
    yield ins
    for s in ins.values():
        s.close()


@pytest.fixture(scope="module")
def kb(tmp_path_factory) -> Path:
    kb = tmp_path_factory.mktemp("esc-kb")
    for name in ("payment-methods.md", "returns-policy.md", "_meta.yaml"):
        (kb / name).write_bytes((SAMPLES / name).read_bytes())
    return kb


def drain(sp: Spravka, rounds: int = 200) -> None:
    for _ in range(rounds):
        sp.dispatcher.run_once()
        if not sp.outbox.list(state=OutboxState.PENDING):
            return
        time.sleep(0.03)


def test_refused_answer_escalates_once_and_survives_failures_and_a_restart(tmp_path, stand_ins, kb):
    home = tmp_path / "home"
    sp = Spravka(settings_for(home, **stand_ins))
    assert sp.ingest(kb, "default").failed == 0
    a = sp.answer("Есть ли у вас доставка дронами на Марс?", escalate=True,
                  caller={"channel": "widget", "role": "user", "key": "k1", "contact": "anna@example.com",
                          "conversation": [{"role": "user", "text": "Есть ли доставка дронами на Марс?"}]})
    assert str(a.status) == "escalate"
    item = sp.escalations.find(a.id)
    assert item is not None and item.state == InboxState.OPEN and item.payload["contact"] == "anna@example.com"
    assert item.payload["chunks"] and item.payload["conversation"] and item.payload["reason"] == "low_confidence"
    # idempotent per answer id: the user's «call an operator» on the same answer adds nothing
    again = sp.escalations.create(a.question, collection="default", answer=a, contact="x", reason="user_request")
    assert again.id == item.id
    msgs = sp.outbox.list()
    assert sorted(m.target.split(":", 1)[0] for m in msgs) == ["jira", "webhook", "zendesk"]
    # the contact never reaches the event log
    assert "anna@example.com" not in json.dumps(list(sp.store.events(limit=100)), ensure_ascii=False)

    for _ in range(2):  # the targets are down: two rounds of 500s
        sp.dispatcher.run_once()
        time.sleep(0.25)
    assert all(m.state == OutboxState.PENDING for m in sp.outbox.list())
    sp.close()  # the process goes away with everything still pending

    sp2 = Spravka(settings_for(home, **stand_ins))
    drain(sp2)
    assert all(m.state == OutboxState.DELIVERED for m in sp2.outbox.list())
    for name, s in stand_ins.items():
        assert s.problems == [], (name, s.problems)
        assert len(s.tickets) == 1, name  # exactly one ticket each
        assert len({r["key"] for r in s.requests}) == 1
    jira = next(m for m in sp2.outbox.list() if m.target.startswith("jira:"))
    assert jira.response["issueKey"] == "SD-1"
    sp2.close()


_CHILD = """
import sys, time
from spravka.app import Spravka
from spravka.core.settings import Settings
sp = Spravka(Settings(home=sys.argv[1], escalate={"targets": ["jira"], "jira": {"base_url": sys.argv[2],
    "service_desk_id": "7", "request_type_id": "42", "email": "bot@corp.ru", "api_token": "jira-token"}},
    delivery={"lease_s": 2.0, "timeout_s": 60}))
print("dispatching", flush=True)
sp.dispatcher.run_once()
print("done", flush=True)
"""


def test_a_sender_killed_mid_delivery_leaves_exactly_one_ticket(tmp_path):
    """kill -9 after the stand-in made the ticket but before the sender heard back: after the
    lease, a new process sends again with the same key and the stand-in returns the same ticket."""
    jira = StandIn("jira", hang=30.0)
    home = tmp_path / "home"
    try:
        settings = Settings(home=home, escalate={"targets": ["jira"], "jira": {
            "base_url": jira.url, "service_desk_id": "7", "request_type_id": "42", "email": "bot@corp.ru",
            "api_token": "jira-token"}}, delivery={"lease_s": 2.0})
        sp = Spravka(settings)
        item = sp.escalations.create("Где мой заказ 123?", collection="default", answer_id="ans-1",
                                     contact="+7 900 000-00-00")
        sp.close()
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(home), jira.url], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
        deadline = time.time() + 60
        while not jira.tickets and time.time() < deadline:
            time.sleep(0.05)
        assert jira.tickets, "the child never reached the stand-in"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)

        sp2 = Spravka(settings)
        msg = sp2.outbox.list()[0]
        assert msg.state == OutboxState.PENDING and msg.attempts == 0  # the kill left it unconfirmed
        assert sp2.dispatcher.run_once().delivered == []  # leased by the dead process for a while
        time.sleep(2.2)
        jira.hang = 0.0
        assert sp2.dispatcher.run_once().delivered == [msg.id]
        assert len(jira.tickets) == 1 and len(jira.requests) == 2
        assert {r["key"] for r in jira.requests} == {f"escalation:{item.id}:jira"}
        assert sp2.outbox.get(msg.id).response["issueKey"] == "SD-1"
        sp2.close()
    finally:
        jira.close()


def test_rejected_request_goes_dead_not_retried(tmp_path):
    jira = StandIn("jira")
    try:
        sp = Spravka(Settings(home=tmp_path, escalate={"targets": ["jira"], "jira": {
            "base_url": jira.url, "service_desk_id": "7", "request_type_id": "42", "email": "bot@corp.ru",
            "api_token": "wrong"}}))
        sp.escalations.create("Вопрос", collection="default", answer_id="a2")
        assert len(sp.dispatcher.run_once().dead) == 1 and jira.problems == ["auth"]
        sp.close()
    finally:
        jira.close()


def test_widget_polls_the_operator_answer_and_the_answer_becomes_a_draft(tmp_path, kb):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from spravka.api import create_app

    sp = Spravka(Settings(home=tmp_path / "home", embedder={"provider": "use"}, answer={"mode": "extractive"}))
    assert sp.ingest(kb, "default").failed == 0
    user, _ = sp.keys.create("widget", "user")
    other, _ = sp.keys.create("other", "user")
    admin, _ = sp.keys.create("admin", "admin")
    with TestClient(create_app(sp, dispatch=False)) as c:
        h = {"Authorization": f"Bearer {user}"}
        ans = c.post("/v1/ask", json={"question": "Сколько стоит слон?", "mode": "extractive"}, headers=h).json()
        r = c.post("/v1/escalations", json={"question": "Сколько стоит слон?", "answer_id": ans["id"],
                                            "contact": "+7 900 111-22-33"}, headers=h)
        assert r.status_code == 201
        esc_id = r.json()["id"]
        poll = c.get(f"/v1/escalations/{esc_id}", headers=h).json()
        assert poll["state"] == "open" and poll["answer"] is None
        assert c.get(f"/v1/escalations/{ans['id']}", headers=h).json()["id"] == esc_id  # by answer id too
        assert c.get(f"/v1/escalations/{esc_id}", headers={"Authorization": f"Bearer {other}"}).status_code == 404
        item = sp.inbox.get(esc_id)
        assert item.payload["chunks"] and item.payload["channel"] == "widget"

        # the operator takes it and answers in the console
        c.post("/admin/login", data={"key": admin}, follow_redirects=False)
        from spravka.web.admin import csrf_token

        tok = csrf_token(admin)
        c.post("/admin/inbox/action", data={"csrf": tok, "id": esc_id, "action": "claim"})
        c.post("/admin/inbox/action", data={"csrf": tok, "id": esc_id, "action": "resolve",
                                            "text": "Слонов мы не продаём, но есть плюшевые."})
        poll = c.get(f"/v1/escalations/{esc_id}", headers=h).json()
        assert poll["state"] == "done" and poll["answer"] == "Слонов мы не продаём, но есть плюшевые."
        r = c.post("/admin/inbox/action", data={"csrf": tok, "id": esc_id, "action": "draft"})
        assert r.status_code == 200
        drafts = list((tmp_path / "home" / "drafts").glob("*.md"))
        assert len(drafts) == 1
        text = drafts[0].read_text(encoding="utf-8")
        assert "# Сколько стоит слон?" in text and "плюшевые" in text and "status: draft" in text
    sp.close()


HOOK = "helpdesk-hook-secret"


def test_a_helpdesk_agents_public_comment_answers_the_user_and_retries_change_nothing(tmp_path):
    """Jira and Zendesk are scripted stand-ins for ticket creation (our side of their protocol);
    their webhooks are posted the way each helpdesk formats them."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from spravka.api import create_app

    jira, zendesk = StandIn("jira"), StandIn("zendesk")
    sp = Spravka(Settings(
        home=tmp_path / "home", embedder={"provider": "use"},
        escalate={"targets": ["jira", "zendesk"], "hook_secret": HOOK,
                  "jira": {"base_url": jira.url, "service_desk_id": "7", "request_type_id": "42",
                           "email": "bot@corp.ru", "api_token": "jira-token"},
                  "zendesk": {"base_url": zendesk.url, "email": "bot@corp.ru", "api_token": "zd-token"}},
        delivery={"base_delay_s": 0.05, "max_delay_s": 0.2}))
    try:
        first = sp.escalations.create("Где мой заказ 1042?", collection="default", answer_id="a1", channel="telegram",
                                      reply_to="telegram:42", answer_text="Не нашёл информацию", answer_status="escalate")
        second = sp.escalations.create("Как вернуть товар?", collection="default", answer_id="a2", channel="telegram",
                                       reply_to="telegram:43")
        drain(sp)
        keys = {m.payload["escalation_id"]: m.response for m in sp.outbox.list() if m.target.startswith("jira:")}
        assert keys[first.id]["issueKey"] == "SD-1" and keys[second.id]["issueKey"] == "SD-2"
        zd = {m.payload["escalation_id"]: m for m in sp.outbox.list() if m.target.startswith("zendesk:")}

        def replies(chat: str) -> list[str]:  # oldest first (the outbox lists newest first)
            return [m.payload["text"] for m in reversed(sp.outbox.list(limit=1000)) if m.target == chat]

        def jira_comment(key: str, cid: str, text, public: bool = True) -> dict:
            return {"webhookEvent": "comment_created", "issue": {"key": key, "fields": {"summary": "…"}},
                    "comment": {"id": cid, "body": text, "author": {"displayName": "Ирина"}, "jsdPublic": public}}

        with TestClient(create_app(sp, dispatch=False)) as c:
            bearer = {"Authorization": f"Bearer {HOOK}"}
            body = jira_comment("SD-1", "10001", "Заказ 1042 передан курьеру, будет завтра.")
            # no secret, a wrong one, a forged signature: refused, nothing changes
            assert c.post("/v1/escalations/hooks/jira", json=body).status_code == 401
            assert c.post("/v1/escalations/hooks/jira", json=body,
                          headers={"Authorization": "Bearer nope"}).status_code == 401
            assert c.post("/v1/escalations/hooks/jira", json=body,
                          headers={"X-Hub-Signature": "sha256=" + "0" * 64}).status_code == 401
            assert sp.inbox.get(first.id).state == InboxState.OPEN

            # an internal note stays in Jira
            r = c.post("/v1/escalations/hooks/jira", json=jira_comment("SD-1", "10000", "клиент VIP", False), headers=bearer)
            assert r.json()["status"] == "ignored" and replies("telegram:42") == []

            # the first public comment (Jira's own HMAC signature) resolves the escalation
            raw = json.dumps(body, ensure_ascii=False).encode()
            sig = "sha256=" + hmac.new(HOOK.encode(), raw, hashlib.sha256).hexdigest()
            r = c.post("/v1/escalations/hooks/jira", content=raw,
                       headers={"X-Hub-Signature": sig, "Content-Type": "application/json"})
            assert r.status_code == 200 and r.json() == {"escalation_id": first.id, "status": "resolved"}
            item = sp.inbox.get(first.id)
            assert item.state == InboxState.DONE and item.resolution["answer"].startswith("Заказ 1042")
            assert item.resolution["by"] == "jira:Ирина" and item.resolution["ticket"] == "jira:SD-1"
            assert replies("telegram:42") == ["Заказ 1042 передан курьеру, будет завтра."]

            # Jira retries the webhook: nothing new
            assert c.post("/v1/escalations/hooks/jira", json=body, headers=bearer).json()["status"] == "duplicate"
            assert len(replies("telegram:42")) == 1
            # a later comment (API v3: ADF body) is a follow-up to the same chat, once
            adf = {"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "Трек-номер: "},
                                                  {"type": "text", "text": "RA123", "marks": [{"type": "strong"}]}]}]}
            for status in ("follow_up", "duplicate"):
                r = c.post("/v1/escalations/hooks/jira", json=jira_comment("SD-1", "10002", adf), headers=bearer)
                assert r.json()["status"] == status
            assert replies("telegram:42") == ["Заказ 1042 передан курьеру, будет завтра.", "Трек-номер: RA123"]
            # not a comment event; an unknown ticket; a body of the wrong shape
            assert c.post("/v1/escalations/hooks/jira", json={"webhookEvent": "jira:issue_updated"},
                          headers=bearer).json()["status"] == "ignored"
            assert c.post("/v1/escalations/hooks/jira", json=jira_comment("SD-99", "1", "x"),
                          headers=bearer).status_code == 404
            assert c.post("/v1/escalations/hooks/jira", json={"comment": {}}, headers=bearer).status_code == 400
            assert c.post("/v1/escalations/hooks/trello", json=body, headers=bearer).status_code == 400
            # an oversized body is refused, declared or streamed without a length
            huge = b'{"comment": "' + b"x" * (1 << 20) + b'"}'
            assert c.post("/v1/escalations/hooks/jira", content=huge, headers=bearer).status_code == 413
            r = c.post("/v1/escalations/hooks/jira", content=iter([huge[:1000], huge[1000:]]), headers=bearer)
            assert r.status_code == 413 and "1 MB" in r.json()["error"]["message"]

            # Zendesk: by ticket id, or by external_id (the escalation's idempotency key)
            zd_id = str(zd[second.id].response["ticket_id"])
            r = c.post("/v1/escalations/hooks/zendesk", headers=bearer,
                       json={"ticket_id": zd_id, "comment_id": "77", "comment": "Верните товар в любом пункте выдачи.",
                             "author": "Олег"})
            assert r.json() == {"escalation_id": second.id, "status": "resolved"}
            r = c.post("/v1/escalations/hooks/zendesk", headers=bearer,
                       json={"external_id": zd[second.id].idempotency_key, "comment_id": "78", "comment": "И чек не нужен."})
            assert r.json()["status"] == "follow_up"
            assert replies("telegram:43") == ["Верните товар в любом пункте выдачи.", "И чек не нужен."]
            # the widget has no channel to write to: its poll shows the answer and the follow-ups
            assert sp.escalations.public(sp.inbox.get(second.id))["follow_ups"] == ["И чек не нужен."]
        kinds = [e["kind"] for e in sp.store.events(limit=200)]
        assert "escalation.answered" in kinds and "escalation.follow_up" in kinds and "escalation.hook" in kinds
    finally:
        sp.close()
        jira.close()
        zendesk.close()


def test_helpdesk_hooks_are_off_without_a_secret(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from spravka.api import create_app

    sp = Spravka(Settings(home=tmp_path / "home", embedder={"provider": "use"}))
    with TestClient(create_app(sp, dispatch=False)) as c:
        r = c.post("/v1/escalations/hooks/jira", json={"issue": {"key": "SD-1"}, "comment": {"body": "x"}},
                   headers={"Authorization": "Bearer "})
        assert r.status_code == 401 and "hook_secret" in r.json()["error"]["message"]
    sp.close()
