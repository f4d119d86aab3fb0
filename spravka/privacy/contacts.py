"""Phone numbers and e-mail addresses.

Russian phones come as +7/8/7 followed by a three-digit code (mobile 9xx, city 3xx/4xx/8xx) and
seven digits, with any mix of brackets, dashes and spaces. Short city numbers («234-56-78») are
only taken after «тел.», because alone they look like any other code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from spravka.privacy.context import near, nearest_label_is_negative
from spravka.privacy.findings import Finding
from spravka.privacy.kinds import PiiKind

_PHONE = re.compile(
    r"(?<![\w+])(?<![.,/-]\d)"
    r"(?P<prefix>\+\s?7|8|7)[\s-]?"
    r"(?:\(\s?(?P<bcode>[3489]\d{2})\s?\)|(?P<code>[3489]\d{2}))[\s-]?"
    r"\d{3}[\s-]?\d{2}[\s-]?\d{2}"
    r"(?![\w]|[.,/-]\d)"
)
_PHONE_CTX = re.compile(
    r"тел\b|тел\.|телефон|моб\.|мобильн|сотов|звон|whats\s?app|ватсап|viber|вайбер|telegram|телеграм|phone|факс|\bт\.",
    re.I,
)
# A mobile number without the country prefix («912 345-67-89»): only next to a phone word.
_BARE_MOBILE = re.compile(r"(?<![\w+])(?<![.,/-]\d)9\d{2}[\s-]?\d{3}[\s-]?\d{2}[\s-]?\d{2}(?![\w]|[.,/-]\d)")
_SHORT_PHONE = re.compile(
    r"(?:тел\.?|телефон[а-я]*|т\.)\s*:?\s*(?P<num>\d{3}-\d{2}-\d{2}|\d{2}-\d{2}-\d{2}|\d-\d{2}-\d{2})(?!\d|[.,/-]\d)",
    re.I,
)
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]{1,64}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w@])",
    re.UNICODE,
)


def detect_phones(text: str) -> Iterator[Finding]:
    for m in _PHONE.finditer(text):
        raw = m.group(0)
        if near(text, m.start(), m.end(), _PHONE_CTX, left=30):
            conf: float | None = 0.97
        elif raw.startswith("+") or m.group("bcode") or re.search(r"[\s-]", raw):
            conf = 0.9
        elif nearest_label_is_negative(text, m.start(), _PHONE_CTX):
            conf = None  # «заказ 89123456789» is an order number
        else:
            conf = 0.75 if raw[0] == "8" or raw.startswith("79") else 0.5
        if conf:
            yield Finding(PiiKind.PHONE, m.start(), m.end(), conf, "regex")
    for m in _BARE_MOBILE.finditer(text):
        if near(text, m.start(), m.end(), _PHONE_CTX, left=30):
            yield Finding(PiiKind.PHONE, m.start(), m.end(), 0.9, "regex")
    for m in _SHORT_PHONE.finditer(text):
        yield Finding(PiiKind.PHONE, m.start("num"), m.end("num"), 0.8, "regex")


def detect_emails(text: str) -> Iterator[Finding]:
    for m in _EMAIL.finditer(text):
        local = m.group(0).split("@", 1)[0]
        if local.startswith(".") or local.endswith(".") or ".." in local:
            continue
        yield Finding(PiiKind.EMAIL, m.start(), m.end(), 0.97, "regex")


def detect_contacts(text: str) -> list[Finding]:
    return [*detect_phones(text), *detect_emails(text)]
