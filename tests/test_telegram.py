"""The Telegram bot against a **stand-in** for the Bot API on loopback (aiohttp): aiogram talks to
it through ``TelegramAPIServer`` with a custom base URL, exactly as it would to a local Bot API
server. The stand-in queues updates for ``getUpdates`` and records what the bot sends."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("aiogram", reason="needs the telegram extra: pip install 'spravka[telegram]'")
from aiohttp import web  # noqa: E402

from spravka.app import Spravka  # noqa: E402
from spravka.core.settings import Settings  # noqa: E402
from spravka.store.queues import InboxState, OutboxState  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "kb" / "customers"
TOKEN = "123456:stand-in-token"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Spravka", "username": "spravka_test_bot"}


class BotApiStandIn:
    """A stand-in for the Telegram Bot API: getMe, getUpdates (long poll), sendMessage,
    answerCallbackQuery, editMessageReplyMarkup, deleteMessage, sendChatAction, anything else → true."""

    def __init__(self) -> None:
        self.updates: list[dict] = []
        self.calls: list[tuple[str, dict]] = []
        self.sent: list[dict] = []
        self._next_update = 1
        self._next_message = 100
        self._lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        async def stop():
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)

    # ---- what the test does ----------------------------------------------------------------------
    def push(self, update: dict) -> None:
        with self._lock:
            update["update_id"] = self._next_update
            self._next_update += 1
            self.updates.append(update)

    def text(self, chat_id: int, text: str, user_id: int | None = None) -> None:
        msg = {"message_id": self._msg_id(), "date": int(time.time()), "text": text,
               "chat": {"id": chat_id, "type": "private"},
               "from": {"id": user_id or chat_id, "is_bot": False, "first_name": "Анна", "username": "anna"}}
        if text.startswith("/"):
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        self.push({"message": msg})

    def press(self, chat_id: int, message: dict, data: str) -> None:
        self.push({"callback_query": {
            "id": f"cb{self._msg_id()}", "chat_instance": "ci", "data": data,
            "from": {"id": chat_id, "is_bot": False, "first_name": "Анна"},
            "message": {"message_id": message["message_id"], "date": int(time.time()),
                        "chat": {"id": chat_id, "type": "private"}, "from": BOT_USER, "text": message["text"]}}})

    def wait_sent(self, chat_id: int, pred, timeout: float = 60.0) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for m in list(self.sent):
                if m["chat_id"] == chat_id and pred(m):
                    return m
            time.sleep(0.05)
        raise AssertionError(f"nothing matching was sent to {chat_id}: {[m['text'][:80] for m in self.sent]}")

    def _msg_id(self) -> int:
        with self._lock:
            self._next_message += 1
            return self._next_message

    # ---- the Bot API side ------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        if request.content_type == "application/json":
            params = await request.json()
        else:
            params = dict(await request.post())
        params = {**dict(request.query), **params}
        self.calls.append((method, params))
        m = method.lower()
        if m == "getme":
            return self.ok(BOT_USER)
        if m == "getupdates":
            offset = int(params.get("offset") or 0)
            deadline = time.time() + min(float(params.get("timeout") or 0), 1.0)
            while True:
                with self._lock:
                    ready = [u for u in self.updates if u["update_id"] >= offset]
                if ready or time.time() >= deadline:
                    return self.ok(ready)
                await asyncio.sleep(0.05)
        if m == "sendmessage":
            markup = params.get("reply_markup")
            if isinstance(markup, str):
                markup = json.loads(markup)
            msg = {"message_id": self._msg_id(), "date": int(time.time()), "chat": {"id": int(params["chat_id"]),
                   "type": "private"}, "from": BOT_USER, "text": params["text"]}
            self.sent.append({"chat_id": int(params["chat_id"]), "text": params["text"], "markup": markup,
                              "message": msg})
            return self.ok(msg)
        return self.ok(True)

    @staticmethod
    def ok(result) -> web.Response:
        return web.json_response({"ok": True, "result": result})


def buttons(sent: dict) -> dict[str, str]:
    return {b["text"]: b["callback_data"] for row in (sent["markup"] or {}).get("inline_keyboard", []) for b in row}


@pytest.fixture
def standin():
    s = BotApiStandIn()
    yield s
    s.close()


def test_question_answer_feedback_operator_and_the_reply_back(tmp_path, standin):
    from spravka.bots.telegram import TelegramBot

    kb = tmp_path / "kb"
    kb.mkdir()
    for name in ("payment-methods.md", "returns-policy.md", "_meta.yaml"):
        (kb / name).write_bytes((SAMPLES / name).read_bytes())
    sp = Spravka(Settings(home=tmp_path / "home", embedder={"provider": "use"}, answer={"mode": "extractive"},
                          telegram={"token": TOKEN, "api_url": standin.url, "allow_chats": [77], "burst": 2,
                                    "rate_per_minute": 1},
                          delivery={"interval_s": 0.1}))
    assert sp.ingest(kb, "default").failed == 0
    sp.store.update_collection_settings("default", {"answer_threshold": 0.0})
    key, rec = sp.keys.create("tg-bot", "bot", ["public"])
    admin_key, _ = sp.keys.create("root", "admin")
    bot = TelegramBot(sp, token=TOKEN, api_url=standin.url, polling_timeout=1)
    thread = bot.start_thread()
    try:
        # an unknown chat may not ask; an admin key does not log a chat in; a bot key does
        standin.text(42, "Как оплатить заказ?")
        standin.wait_sent(42, lambda m: "Нет доступа" in m["text"])
        standin.text(42, f"/login {admin_key}")
        standin.wait_sent(42, lambda m: "не подошёл" in m["text"])
        standin.text(42, f"/login {key}")
        standin.wait_sent(42, lambda m: "Вход выполнен" in m["text"])
        assert any(c[0] == "deleteMessage" for c in standin.calls)  # the key does not stay in the chat

        standin.text(42, "Как оплатить заказ?")
        ans = standin.wait_sent(42, lambda m: "Источники" in m["text"])
        assert "[1]" in ans["text"]
        b = buttons(ans)
        assert set(b) == {"👍", "👎", "Позвать оператора"}
        answer_id = b["👍"].split(":", 1)[1]
        event = next(e for e in sp.store.events(kind="answer", limit=10) if e["answer_id"] == answer_id)
        assert event["caller"] == {"channel": "telegram", "role": "bot", "key": rec.id, "key_name": "tg-bot"}

        standin.press(42, ans["message"], b["👍"])
        deadline = time.time() + 30
        while not any(e["answer_id"] == answer_id for e in sp.store.events(kind="feedback", limit=10)):
            assert time.time() < deadline
            time.sleep(0.05)
        fb = next(e for e in sp.store.events(kind="feedback", limit=10) if e["answer_id"] == answer_id)
        assert fb["rating"] == "up" and fb["channel"] == "telegram"

        standin.press(42, ans["message"], b["Позвать оператора"])
        standin.wait_sent(42, lambda m: "Передал вопрос оператору" in m["text"])
        item = sp.escalations.find(answer_id)
        assert item is not None and item.payload["reply_to"] == "telegram:42"
        assert item.payload["contact"]["telegram_chat_id"] == 42 and item.payload["chunks"]
        assert [m["role"] for m in item.payload["conversation"]] == ["user", "assistant"]

        # the operator answers in the console; the dispatcher of the bot's process sends it back
        sp.inbox.claim(item.id, "olga")
        sp.inbox.resolve(item.id, {"answer": "Ещё можно оплатить по СБП."}, "olga")
        reply = standin.wait_sent(42, lambda m: "СБП" in m["text"])
        assert reply["text"].startswith("Ответ оператора")
        assert sp.inbox.get(item.id).state == InboxState.DONE
        deadline = time.time() + 10
        while sp.outbox.list()[0].state != OutboxState.DELIVERED:
            assert time.time() < deadline
            time.sleep(0.05)
        assert len([m for m in standin.sent if "СБП" in m["text"]]) == 1

        # an allow-listed chat may ask without a login, within its rate limit (burst 2)
        for q in ("Можно ли вернуть товар?", "Как вернуть товар?", "Сколько дней на возврат?"):
            standin.text(77, q)
        standin.wait_sent(77, lambda m: "Слишком много вопросов" in m["text"])
        assert len([m for m in standin.sent if m["chat_id"] == 77 and "Источники" in m["text"]]) <= 2
        # the key never reaches the event log
        assert key not in json.dumps(list(sp.store.events(limit=500)), ensure_ascii=False)
    finally:
        bot.stop()
        thread.join(timeout=15)
        sp.close()


def test_a_refusal_in_telegram_names_the_nearest_documents():
    from spravka.bots.telegram import reply_text
    from spravka.core.types import Answer, AnswerStatus

    refusal = Answer(question="q", text="Не нашёл информацию по этому вопросу.", status=AnswerStatus.REFUSED,
                     confidence=0.3, mode="refusal",
                     related=[{"doc_id": "customers/returns-policy.md", "title": "Правила возврата товаров",
                               "heading": "Сроки возврата", "url": "https://example.ru/returns"}])
    text = reply_text(refusal)
    assert text.startswith("Не нашёл информацию") and "Возможно, поможет:" in text
    assert "• Правила возврата товаров — Сроки возврата — https://example.ru/returns" in text
    refusal.related = []
    assert reply_text(refusal) == "Не нашёл информацию по этому вопросу."
