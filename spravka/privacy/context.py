"""Words around a candidate that make it more or less likely to be personal data.

Digits alone are ambiguous: «4508 123456» is a passport after «паспорт» and nothing in particular
after «заказ №». Detectors look a short way to the left (labels precede values in Russian
documents and forms) and, for a few kinds, a little to the right.
"""

from __future__ import annotations

import re

#: Words that say the number next to them belongs to goods, orders or documents, not to a person.
NEGATIVE = re.compile(
    r"(?:заказ|артикул|арт\.|накладн|трек|отправлени|посылк|парти[яи]|серийн|s/n|sn\b|sku|"
    r"модел|инвентарн|тикет|обращени|заявк|чек\b|чека|квитанц|платёжк|платежк|поручени|"
    r"договор|контракт|счёт-фактур|счет-фактур|акт\b|акта\b|лот\b|id\b|код\s+товар|штрихкод|ean|"
    r"версии|верси[яю]|сборк|билет|рейс|vin)",
    re.IGNORECASE,
)


# The end of the previous sentence: a label there belongs to another value.
_SENTENCE_END = re.compile(r"(?:[.!?;]\s+(?=[«\"(]?[А-ЯЁA-Z])|\n)")


def before(text: str, start: int, window: int = 40) -> str:
    """Up to ``window`` characters left of ``start``, cut at the previous sentence end or line break."""
    chunk = text[max(0, start - window) : start]
    ends = [m.end() for m in _SENTENCE_END.finditer(chunk)]
    return chunk[ends[-1] :] if ends else chunk


def after(text: str, end: int, window: int = 20) -> str:
    """Up to ``window`` characters right of ``end``, cut at the next line break."""
    return text[end : end + window].split("\n", 1)[0]


def near(text: str, start: int, end: int, pattern: re.Pattern[str], left: int = 40, right: int = 0) -> bool:
    """Whether ``pattern`` occurs just before (or, with ``right``, just after) the span."""
    if pattern.search(before(text, start, left)):
        return True
    return bool(right and pattern.search(after(text, end, right)))


def nearest_label_is_negative(text: str, start: int, positive: re.Pattern[str], window: int = 40) -> bool:
    """True when a goods/order word is the closest label to the left and no positive one is closer."""
    left = before(text, start, window)
    neg = [m.end() for m in NEGATIVE.finditer(left)]
    if not neg:
        return False
    pos = [m.end() for m in positive.finditer(left)]
    return not pos or max(neg) > max(pos)
