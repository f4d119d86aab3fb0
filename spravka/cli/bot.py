"""``spravka bot telegram``: the Telegram bot (long polling) and the outbox dispatcher beside it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import typer

from spravka.cli.base import app, console, state
from spravka.core.errors import ConfigError

bot_app = typer.Typer(help="Chat bots over the same answer pipeline.", no_args_is_help=True)
app.add_typer(bot_app, name="bot")


@bot_app.command("telegram")
def telegram(
    token: str | None = typer.Option(None, "--token", envvar="SPRAVKA_TELEGRAM__TOKEN",
                                     help="Bot token from @BotFather (default telegram.token)."),
    api_url: str | None = typer.Option(None, "--api-url", help="A local Bot API server (default api.telegram.org)."),
    collection: str | None = typer.Option(None, "--collection", "-c", help="Collection to answer from."),
) -> None:
    """Answer questions in Telegram with sources, 👍/👎 and «Позвать оператора»; deliver the
    operators' answers back to the chats. Access: telegram.allow_chats / allow_users, or
    /login <API key of role user or bot> in the chat."""
    from spravka.bots.telegram import TelegramBot

    overrides = {}
    if token:
        overrides["token"] = token
    if api_url:
        overrides["api_url"] = api_url
    if collection:
        overrides["collection"] = collection
    if overrides:
        state.overrides["telegram"] = {**state.overrides.get("telegram", {}), **overrides}
    sp = state.spravka()
    tg = sp.settings.telegram
    if tg.token is None:
        raise ConfigError("the bot needs a token", hint="--token or SPRAVKA_TELEGRAM__TOKEN")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # aiogram logs each update's handling at INFO; nothing of the message text
    bot = TelegramBot(sp, token=tg.token.get_secret_value(), api_url=tg.api_url)
    console.print(f"telegram bot: collection {bot.collection}; Ctrl+C stops")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(bot.run())
