"""The shared inbox (human tasks) and outbox (deliveries with retries), with a real HTTP receiver."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spravka.core.errors import InputError
from spravka.delivery import OutboxDispatcher
from spravka.delivery.webhook import WebhookSender
from spravka.store.queues import InboxState, OutboxState
from spravka.store.sql_queues import SqlInbox, SqlOutbox
from spravka.store.sqlite.db import Database


class Receiver:
    """A webhook receiver on loopback that fails the first ``fail`` requests with ``status``."""

    def __init__(self, fail: int = 0, status: int = 500) -> None:
        self.fail, self.status = fail, status
        self.received: list[tuple[str, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.fail > 0:
                    receiver.fail -= 1
                    self.send_response(receiver.status)
                    self.end_headers()
                    return
                receiver.received.append((self.headers["Idempotency-Key"], body))
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"ticket": f"T-{len(receiver.received)}"}).encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_inbox_lifecycle(tmp_path):
    inbox = SqlInbox(Database(tmp_path / "db"))
    a = inbox.add("escalation", "Вопрос без ответа", {"question": "где мой заказ?"}, priority=2, dedup_key="ans-1")
    assert inbox.add("escalation", "again", {}, dedup_key="ans-1").id == a.id  # idempotent
    b = inbox.add("triage", "Тикет", {"text": "не работает VPN"})
    assert [i.id for i in inbox.list()] == [a.id, b.id]  # priority first
    assert [i.id for i in inbox.list(type="triage")] == [b.id]
    claimed = inbox.claim(a.id, "olga")
    assert claimed.state == InboxState.CLAIMED and claimed.assignee == "olga"
    with pytest.raises(InputError, match="taken by olga"):
        inbox.claim(a.id, "ivan")
    done = inbox.resolve(a.id, {"answer": "Заказ в пути"}, "olga")
    assert done.state == InboxState.DONE and done.resolution == {"answer": "Заказ в пути", "by": "olga"}
    with pytest.raises(InputError, match="already done"):
        inbox.resolve(a.id, {}, "olga")
    # follow-ups go on a done item only, once per key, and keep the answer
    with pytest.raises(InputError, match="not done"):
        inbox.follow_up(b.id, {"text": "ещё"}, "k1")
    assert inbox.follow_up(a.id, {"text": "Курьер будет к 18:00"}, "k1")
    assert not inbox.follow_up(a.id, {"text": "Курьер будет к 18:00"}, "k1")
    res = inbox.get(a.id).resolution
    assert res["answer"] == "Заказ в пути" and [u["text"] for u in res["follow_ups"]] == ["Курьер будет к 18:00"]
    assert inbox.dismiss(b.id, "спам", "ivan").state == InboxState.DISMISSED
    assert inbox.counts() == {"escalation": {"done": 1}, "triage": {"dismissed": 1}}


def test_outbox_survives_a_failing_target_and_a_restart_then_delivers_exactly_once(tmp_path):
    rx = Receiver(fail=3)
    clock = [1000.0]
    try:
        db = Database(tmp_path / "db")
        outbox = SqlOutbox(db)
        m = outbox.enqueue(f"webhook:{rx.url}", {"question": "где мой заказ?"}, "esc-42")
        assert outbox.enqueue(f"webhook:{rx.url}", {"question": "дубль"}, "esc-42").id == m.id
        d = OutboxDispatcher(outbox, base_delay_s=1, clock=lambda: clock[0])
        d.register("webhook", WebhookSender())
        assert d.run_once().retried == [m.id]
        assert d.run_once().retried == []  # not due yet: backoff
        clock[0] += 10
        assert d.run_once().retried == [m.id]
        assert outbox.get(m.id).attempts == 2 and "500" in outbox.get(m.id).last_error
        db.close()

        # the process restarts: a new database handle and dispatcher pick the message up
        outbox2 = SqlOutbox(Database(tmp_path / "db"))
        d2 = OutboxDispatcher(outbox2, base_delay_s=1, clock=lambda: clock[0])
        d2.register("webhook", WebhookSender())
        clock[0] += 100
        assert d2.run_once().retried == [m.id]
        clock[0] += 100
        assert d2.run_once().delivered == [m.id]
        clock[0] += 1000
        assert d2.run_once().delivered == []
        final = outbox2.get(m.id)
        assert final.state == OutboxState.DELIVERED and final.response["body"] == {"ticket": "T-1"}
        assert rx.received == [("esc-42", {"question": "где мой заказ?"})]
    finally:
        rx.close()


def test_rejected_messages_go_dead_and_can_be_retried(tmp_path):
    rx = Receiver(fail=1, status=422)
    try:
        outbox = SqlOutbox(Database(tmp_path / "db"))
        d = OutboxDispatcher(outbox)
        d.register("webhook", WebhookSender())
        m = outbox.enqueue(f"webhook:{rx.url}", {"x": 1}, "k1")
        assert d.run_once().dead == [m.id]
        assert outbox.get(m.id).state == OutboxState.DEAD
        outbox.retry(m.id)
        assert d.run_once().delivered == [m.id]
    finally:
        rx.close()


def test_unknown_scheme_and_unreachable_target_are_retried_then_dead(tmp_path):
    outbox = SqlOutbox(Database(tmp_path / "db"))
    clock = [0.0]
    d = OutboxDispatcher(outbox, max_attempts=3, base_delay_s=1, clock=lambda: clock[0])
    d.register("webhook", WebhookSender(timeout_s=1))
    a = outbox.enqueue("nowhere:x", {}, "a")
    b = outbox.enqueue("webhook:http://127.0.0.1:9/closed", {}, "b")
    for _ in range(3):
        d.run_once()
        clock[0] += 10_000
    assert outbox.get(a.id).state == outbox.get(b.id).state == OutboxState.DEAD
    assert "no sender" in outbox.get(a.id).last_error and "unreachable" in outbox.get(b.id).last_error


def test_background_loop_delivers(tmp_path):
    import time

    rx = Receiver()
    try:
        outbox = SqlOutbox(Database(tmp_path / "db"))
        d = OutboxDispatcher(outbox)
        d.register("webhook", WebhookSender(secret="s3cret"))
        d.start(interval_s=0.05)
        m = outbox.enqueue(f"webhook:{rx.url}", {"hello": "мир"}, "bg")
        deadline = time.time() + 10
        while outbox.get(m.id).state != OutboxState.DELIVERED and time.time() < deadline:
            time.sleep(0.05)
        d.stop()
        assert outbox.get(m.id).state == OutboxState.DELIVERED
    finally:
        rx.close()


def test_resolve_runs_the_handlers_of_the_item_type(tmp_path):
    inbox = SqlInbox(Database(tmp_path / "db"))
    seen = []
    inbox.on_resolve("triage", lambda item: seen.append((item.id, item.resolution["label"])))
    inbox.on_resolve("triage", lambda item: (_ for _ in ()).throw(RuntimeError("a broken handler")))
    t = inbox.add("triage", "x", {})
    e = inbox.add("escalation", "y", {})
    assert inbox.resolve(t.id, {"label": "delivery"}, "olga").state == InboxState.DONE
    inbox.resolve(e.id, {"answer": "..."}, "olga")
    assert seen == [(t.id, "delivery")]
