"""Dates of birth: personal data under 152-FZ, yet only recognisable by the words before them.

Any other date (an order, a delivery, a contract) is left alone, so a date is taken only right
after «дата рождения», «д.р.», «родился», or as «1985 г.р.».
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from spravka.privacy.findings import Finding
from spravka.privacy.kinds import PiiKind

_MONTHS = r"(?:января|февраля|марта|апреля|мая|июня|июля|августа|сентября|октября|ноября|декабря)"
_DATE = rf"(?:\d{{1,2}}[./-]\d{{1,2}}[./-](?:19|20)?\d{{2}}|\d{{1,2}}\s+{_MONTHS}\s+\d{{4}}(?:\s?г\.?(?!\s?р))?|(?:19|20)\d{{2}}-\d{{2}}-\d{{2}})"
_LABELLED = re.compile(
    r"(?i:дата\s+рождения|д\.\s?р\.|дню\s+рождения|родил(?:ся|ась)|рожд\.|date\s+of\s+birth|\bdob\b|born)"
    rf"[\s:,-]{{0,4}}(?:(?i:в|on)\s+)?(?P<date>{_DATE})(?!\d)"
)
_YEAR = re.compile(r"(?<!\d)(?P<date>(?:19|20)\d{2})\s?(?:г\.\s?р\.|года\s+рождения|г\.\s?рожд\.)")


def detect_birthdates(text: str) -> Iterator[Finding]:
    for m in _LABELLED.finditer(text):
        yield Finding(PiiKind.BIRTH_DATE, m.start("date"), m.end("date"), 0.9, "regex")
    for m in _YEAR.finditer(text):
        yield Finding(PiiKind.BIRTH_DATE, m.start("date"), m.end("date"), 0.8, "regex")
