"""The question's language, decided by script, and the user-facing texts in it.

Support questions are short and mixed («как подключить VPN на macbook?»), so a statistical
detector is overkill and often wrong; counting Cyrillic against Latin letters is enough to choose
between the two languages the platform answers in.
"""

from __future__ import annotations

import re

_CYRILLIC = re.compile(r"[а-яёА-ЯЁ]")
_LATIN = re.compile(r"[a-zA-Z]")

REFUSAL = {
    "ru": "Не нашёл информацию по этому вопросу в базе знаний. Могу передать вопрос оператору.",
    "en": "I could not find information on this question in the knowledge base. "
    "I can pass your question to an operator.",
}
ESCALATION = {
    "ru": "Не нашёл информацию по этому вопросу в базе знаний. Передаю вопрос оператору.",
    "en": "I could not find information on this question in the knowledge base. "
    "I am passing your question to an operator.",
}


def detect_language(text: str) -> str:
    """``"en"`` when Latin letters outnumber Cyrillic ones, else ``"ru"`` (the default)."""
    cyr = len(_CYRILLIC.findall(text))
    lat = len(_LATIN.findall(text))
    return "en" if lat > cyr else "ru"


def refusal_text(language: str, *, escalate: bool = False) -> str:
    table = ESCALATION if escalate else REFUSAL
    return table.get(language, table["ru"])
