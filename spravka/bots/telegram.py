"""The Telegram bot (aiogram 3): answers with sources through the same pipeline as the API.

* Every answer carries inline buttons 👍/👎 (``feedback`` events) and «Позвать оператора» (an
  escalation with the conversation, the retrieved chunks and the chat as the contact). The
  operator's answer comes back to the chat through the outbox (``telegram:<chat_id>``), sent by
  the dispatcher this process runs.
* Access: chats and users on the allow-list read ``telegram.groups``; any other chat logs in with
  ``/login <API key of role user or bot>`` and then reads that key's groups. The binding (chat →
  key id) lives in SQLite; the key itself is never stored or logged, and the message that
  carried it is deleted from the chat. A revoked key ends the binding.
* A per-chat token bucket keeps one chat from flooding the pipeline.

Everything that talks to Telegram goes through aiogram's session, so ``api_url`` can point at a
local Bot API server (or, in tests, at a stand-in on loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from spravka.auth.ratelimit import RateLimiter
from spravka.core.errors import ConfigError, SpravkaError
from spravka.core.filters import Filter
from spravka.core.settings import TelegramSettings
from spravka.core.types import Answer, AnswerStatus

log = logging.getLogger("spravka.telegram")

MAX_TEXT = 4096
_RECENT = 5000
_HISTORY = 10
LOGIN_ROLES = ("user", "bot")

T_NO_ACCESS = ("Нет доступа. Войдите ключом компании: /login <ключ API>\n"
               "Ключ выдаёт администратор (роль user или bot).")
T_LOGGED_IN = "Вход выполнен ({name}). Задайте вопрос."
T_BAD_KEY = "Ключ не подошёл: он неверный, отозван или не для чата (нужна роль user или bot)."
T_LOGGED_OUT = "Вы вышли. Чтобы снова задавать вопросы: /login <ключ API>"
T_START = "Здравствуйте! Я отвечаю на вопросы по базе знаний компании и указываю источники."
T_RATE = "Слишком много вопросов подряд. Подождите {s:.0f} с."
T_ESCALATED = "Передал вопрос оператору. Ответ придёт в этот чат."
T_ALREADY = "Вопрос уже у оператора. Ответ придёт в этот чат."
T_THANKS = "Спасибо за отзыв!"
T_FAILED = "Не получилось ответить: {msg}"
T_SOURCES = "Источники"
B_UP, B_DOWN, B_OPERATOR = "👍", "👎", "Позвать оператора"


@dataclass(frozen=True)
class Access:
    groups: tuple[str, ...]
    role: str
    key_id: str | None = None
    key_name: str | None = None


class Bindings:
    """chat id → API key id (table ``telegram_bindings``, schema v5)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def get(self, chat_id: int) -> str | None:
        rows = self.db.query("SELECT key_id FROM telegram_bindings WHERE chat_id=?", (chat_id,))
        return rows[0][0] if rows else None

    def bind(self, chat_id: int, key_id: str, user_id: int | None) -> None:
        from spravka.store.sqlite.db import now

        self.db.execute("INSERT INTO telegram_bindings(chat_id, key_id, user_id, created_at) VALUES(?,?,?,?)"
                        " ON CONFLICT (chat_id) DO UPDATE SET key_id=excluded.key_id, user_id=excluded.user_id,"
                        " created_at=excluded.created_at", (chat_id, key_id, user_id, now()))

    def unbind(self, chat_id: int) -> None:
        self.db.execute("DELETE FROM telegram_bindings WHERE chat_id=?", (chat_id,))


def sources_text(a: Answer) -> str:
    if not a.citations:
        return ""
    lines = []
    for c in a.citations:
        url = next((h.url for h in a.hits if h.doc_id == c.doc_id), None)
        where = c.title or c.doc_id
        lines.append(f"[{c.n}] {where}" + (f" — {url}" if url else ""))
    return f"\n\n{T_SOURCES}:\n" + "\n".join(lines)


def related_text(a: Answer) -> str:
    """With a refusal: the nearest documents, for the person to open themselves."""
    if not a.related:
        return ""
    lines = [f"• {r['title']}" + (f" — {r['heading']}" if r.get("heading") else "")
             + (f" — {r['url']}" if r.get("url") else "") for r in a.related]
    return "\n\nВозможно, поможет:\n" + "\n".join(lines)


def reply_text(a: Answer) -> str:
    text = a.text + sources_text(a) + related_text(a)
    if a.status == AnswerStatus.ESCALATE:
        text += "\n\n" + T_ESCALATED
    return text[:MAX_TEXT]


class TelegramBot:
    def __init__(self, sp: Any, *, token: str, api_url: str | None = None,
                 settings: TelegramSettings | None = None, polling_timeout: int = 10) -> None:
        try:
            from aiogram import Bot, Dispatcher
            from aiogram.client.session.aiohttp import AiohttpSession
            from aiogram.client.telegram import TelegramAPIServer
        except ImportError:
            raise ConfigError("the Telegram bot needs aiogram", hint="pip install 'spravka[telegram]'") from None
        self.sp = sp
        self.settings = settings or sp.settings.telegram
        s = self.settings
        session = AiohttpSession(api=TelegramAPIServer.from_base(api_url)) if api_url else AiohttpSession()
        self.bot = Bot(token, session=session)
        self.dp = Dispatcher()
        self.polling_timeout = polling_timeout
        self.limiter = RateLimiter(s.rate_per_minute, s.burst)
        self.bindings = Bindings(sp._queue_db)
        self.collection = s.collection or sp.settings.collection
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._history: dict[int, deque[dict[str, str]]] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._register()

    # ---- access ------------------------------------------------------------------------------
    def access(self, chat_id: int, user_id: int | None) -> Access | None:
        key_id = self.bindings.get(chat_id)
        if key_id:
            key = self.sp.keys.get(key_id)
            if key is not None and key.active and str(key.role) in LOGIN_ROLES:
                return Access(tuple(key.groups), str(key.role), key.id, key.name)
            self.bindings.unbind(chat_id)  # the key was revoked: the chat logs in again
        s = self.settings
        if chat_id in s.allow_chats or (user_id is not None and user_id in s.allow_users):
            return Access(tuple(s.groups), "telegram")
        if s.open:
            return Access((), "telegram")
        return None

    # ---- handlers ------------------------------------------------------------------------------
    def _register(self) -> None:
        from aiogram import F
        from aiogram.filters import Command, CommandStart

        self.dp.message.register(self.on_start, CommandStart())
        self.dp.message.register(self.on_login, Command("login"))
        self.dp.message.register(self.on_logout, Command("logout"))
        self.dp.message.register(self.on_text, F.text)
        self.dp.callback_query.register(self.on_callback)

    async def on_start(self, message: Any) -> None:
        ok = self.access(message.chat.id, getattr(message.from_user, "id", None)) is not None
        await message.answer(T_START + ("" if ok else "\n\n" + T_NO_ACCESS))

    async def on_login(self, message: Any) -> None:
        parts = (message.text or "").split(maxsplit=1)
        raw = parts[1].strip() if len(parts) > 1 else ""
        # the key must not stay in the chat history
        with contextlib.suppress(Exception):  # best effort
            await message.delete()
        key = await asyncio.to_thread(self.sp.keys.verify, raw) if raw else None
        if key is None or str(key.role) not in LOGIN_ROLES:
            await message.answer(T_BAD_KEY)
            return
        await asyncio.to_thread(self.bindings.bind, message.chat.id, key.id, getattr(message.from_user, "id", None))
        self.sp.store.log_event("telegram.login", {"key": key.id, "role": str(key.role)})
        await message.answer(T_LOGGED_IN.format(name=key.name))

    async def on_logout(self, message: Any) -> None:
        await asyncio.to_thread(self.bindings.unbind, message.chat.id)
        await message.answer(T_LOGGED_OUT)

    async def on_text(self, message: Any) -> None:
        question = (message.text or "").strip()
        if not question or question.startswith("/"):
            return
        chat_id = message.chat.id
        user = message.from_user
        acc = self.access(chat_id, getattr(user, "id", None))
        if acc is None:
            await message.answer(T_NO_ACCESS)
            return
        wait = self.limiter.take(str(chat_id))
        if wait > 0:
            await message.answer(T_RATE.format(s=max(1.0, wait)))
            return
        history = self._history.setdefault(chat_id, deque(maxlen=_HISTORY))
        history.append({"role": "user", "text": question[:2000]})
        caller = {"channel": "telegram", "role": acc.role, "key": acc.key_id, "key_name": acc.key_name,
                  "reply_to": f"telegram:{chat_id}", "contact": self._contact(chat_id, user),
                  "conversation": list(history)}
        with contextlib.suppress(Exception):  # best effort
            await self.bot.send_chat_action(chat_id, "typing")
        try:
            a: Answer = await asyncio.to_thread(
                self.sp.answer, question[:4000], collection=self.collection, flt=Filter(groups=acc.groups),
                mode=self.settings.mode, caller=caller)
        except SpravkaError as e:
            await message.answer(T_FAILED.format(msg=e.message))
            return
        history.append({"role": "assistant", "text": a.text[:2000]})
        self._remember(a, chat_id, acc)
        await message.answer(reply_text(a), reply_markup=self._keyboard(a))

    async def on_callback(self, cb: Any) -> None:
        data = str(cb.data or "")
        kind, _, answer_id = data.partition(":")
        known = self._recall(answer_id)
        chat_id = cb.message.chat.id if cb.message is not None else None
        if known is None or known["chat_id"] != chat_id:
            await cb.answer("Ответ устарел", show_alert=False)
            return
        if kind in ("up", "down"):
            self.sp.store.log_event("feedback", {"answer_id": answer_id, "rating": kind, "comment": None,
                                                 "key": known.get("key"), "channel": "telegram"},
                                    collection=known["collection"])
            await cb.answer(T_THANKS)
            # one vote per answer: keep only the operator button (an old message may not be editable)
            with contextlib.suppress(Exception):
                await cb.message.edit_reply_markup(reply_markup=self._keyboard(known["answer"], votes=False))
        elif kind == "op":
            before = self.sp.escalations.find(answer_id)
            a: Answer = known["answer"]
            await asyncio.to_thread(
                self.sp.escalations.create, a.question, collection=a.collection, answer=a,
                conversation=list(self._history.get(chat_id, ())), contact=self._contact(chat_id, cb.from_user),
                channel="telegram", reply_to=f"telegram:{chat_id}", reason="user_request",
                caller={"channel": "telegram", "role": known.get("role"), "key": known.get("key")})
            await cb.answer()
            await cb.message.answer(T_ALREADY if before is not None else T_ESCALATED)
        else:
            await cb.answer()

    # ---- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _contact(chat_id: int, user: Any) -> dict[str, Any]:
        c: dict[str, Any] = {"telegram_chat_id": chat_id}
        if user is not None:
            c["telegram_user_id"] = user.id
            if getattr(user, "username", None):
                c["username"] = "@" + user.username
            name = " ".join(x for x in (getattr(user, "first_name", None), getattr(user, "last_name", None)) if x)
            if name:
                c["name"] = name
        return c

    def _keyboard(self, a: Answer, *, votes: bool = True) -> Any:
        from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

        if a.status == AnswerStatus.ESCALATE:
            return None
        rows = []
        if votes and a.status == AnswerStatus.ANSWERED:
            rows.append([InlineKeyboardButton(text=B_UP, callback_data=f"up:{a.id}"),
                         InlineKeyboardButton(text=B_DOWN, callback_data=f"down:{a.id}")])
        rows.append([InlineKeyboardButton(text=B_OPERATOR, callback_data=f"op:{a.id}")])
        return InlineKeyboardMarkup(inline_keyboard=rows)

    def _remember(self, a: Answer, chat_id: int, acc: Access) -> None:
        with self._lock:
            self._recent[a.id] = {"answer": a, "chat_id": chat_id, "collection": a.collection, "key": acc.key_id,
                                  "role": acc.role}
            while len(self._recent) > _RECENT:
                self._recent.popitem(last=False)

    def _recall(self, answer_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._recent.get(answer_id)

    # ---- running -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Poll Telegram until :meth:`stop`; the outbox dispatcher runs beside it."""
        self._loop = asyncio.get_running_loop()
        self.sp.start_dispatcher()
        try:
            me = await self.bot.get_me()
            log.info("telegram bot @%s is polling", me.username)
            await self.dp.start_polling(self.bot, handle_signals=False, polling_timeout=self.polling_timeout,
                                        allowed_updates=["message", "callback_query"])
        finally:
            await self.bot.session.close()

    def stop(self) -> None:
        """Stop polling (from any thread)."""
        if self._loop is not None and self._loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self.dp.stop_polling(), self._loop)
            with contextlib.suppress(Exception):  # best effort
                fut.result(timeout=10)

    def start_thread(self) -> threading.Thread:
        """Run the bot in a background thread with its own event loop (tests, embedding)."""
        t = threading.Thread(target=lambda: asyncio.run(self.run()), name="spravka-telegram", daemon=True)
        t.start()
        return t
