"""Prompts for answers over numbered sources, in the question's language.

Small local models do not cite unprompted: the instruction names the exact citation format and
shows it once. The stricter variant, used for the one retry after a failed post-check, repeats
what was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from spravka.answer.sources import Source
from spravka.models.chat import Message

_SYSTEM = {
    "ru": "Ты — ассистент службы поддержки. Отвечай на вопросы пользователей только по предоставленным источникам.",
    "en": "You are a support assistant. Answer users' questions only from the sources provided.",
}

# The instruction goes after the sources: small models follow the last thing they read. There is
# deliberately no "say you don't know" clause: measured with Qwen2.5-Coder-1.5B it made the model
# refuse answerable questions (2 of 3); refusing is the confidence gate's job, and invented
# facts are the post-check's.
_INSTRUCTION = {
    "ru": (
        "Ответь на вопрос 1–3 полными предложениями по-русски, используя только источники. После каждого "
        "утверждения укажи номер источника в квадратных скобках, например [1]. Не добавляй чисел, дат, сумм "
        "и названий, которых нет в источниках."
    ),
    "en": (
        "Answer the question in 1-3 full sentences in English, using only the sources. After each statement "
        "give the source number in square brackets, for example [1]. Do not add numbers, dates, amounts or "
        "names that are not in the sources."
    ),
}

_STRICT = {
    "ru": (
        "Предыдущий ответ не прошёл проверку ({problems}). Используй только факты из источников, дословно "
        "переноси числа и названия, каждое предложение заканчивай ссылкой на источник [n]."
    ),
    "en": (
        "The previous answer failed the check ({problems}). Use only facts from the sources, copy numbers "
        "and names exactly, end every sentence with a source citation [n]."
    ),
}

_LABELS = {"ru": ("Источники", "Вопрос"), "en": ("Sources", "Question")}

_REFUSAL_MARKERS = re.compile(
    r"нет ответа|нет информации|не содерж|не нашёл|не нашел|не найден|не указан|"
    r"do not (?:answer|contain|mention)|does not (?:answer|contain|mention)|no information|cannot find|"
    r"can't find|not (?:found|mentioned)",
    re.IGNORECASE,
)


def messages(
    question: str, sources: Sequence[Source], language: str, problems: Sequence[str] = ()
) -> list[Message]:
    lang = language if language in _SYSTEM else "ru"
    src_label, q_label = _LABELS[lang]
    body = "\n\n".join(s.render() for s in sources)
    instruction = _INSTRUCTION[lang]
    if problems:
        instruction += " " + _STRICT[lang].format(problems="; ".join(problems))
    user = f"{src_label}:\n\n{body}\n\n{q_label}: {question}\n\n{instruction}"
    return [{"role": "system", "content": _SYSTEM[lang]}, {"role": "user", "content": user}]


def is_no_answer(text: str) -> bool:
    """The model said the sources do not answer (short, no citation needed)."""
    stripped = text.strip()
    return bool(stripped) and len(stripped) < 200 and bool(_REFUSAL_MARKERS.search(stripped))
