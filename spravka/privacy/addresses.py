"""Street addresses by pattern: «г. Москва, ул. Ленина, д. 5, кв. 12», «Ленинский пр-т 10».

The NER model finds place names but not house and flat numbers, and those are what make an
address personal. A street with a house number is an address; a street alone («офис на
ул. Ленина») is only reported with a low confidence, unless words like «проживает» precede it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from spravka.privacy.context import near
from spravka.privacy.findings import Finding
from spravka.privacy.kinds import PiiKind

_WORD = r"[А-ЯЁ][а-яё]+(?:-[А-ЯЁа-яё][а-яё]+)?"
_ADJ = r"[А-ЯЁ][а-яё]+(?:ий|ый|ой|ая|ое|яя)"
_ORDINAL = r"\d{1,2}(?:-?(?:я|й|ая|ый|ой|го))?"
_STREET_TYPE = (
    r"(?i:ул\.|ул(?=\s)|улиц[аеуы]|пр-кт|пр-т|просп\.|проспект[аеу]?|пр\.|пер\.|переул(?:ок|ке|ка)|ш\.|шоссе|"
    r"б-р|бул\.|бульвар[аеу]?|наб\.|набережн(?:ая|ой|ую)|пл\.|площад[ьи]|пр-д|проезд[аеу]?|мкр\.?|"
    r"мкрн\.?|микрорайон[аеу]?|алле[яеи]|тупик[аеу]?|линия|тракт[аеу]?|кв-л|квартал[аеу]?)"
)
_STREET = (
    rf"(?:{_STREET_TYPE}\s?(?:{_ORDINAL}\s)?{_WORD}(?:\s{_WORD}){{0,2}}"
    rf"|(?:{_ORDINAL}\s)?{_ADJ}\s{_STREET_TYPE})"
)
_HOUSE = r"(?:,?\s?(?i:д\.?|дом|вл\.|влад\.)\s?\d{1,4}[А-Яа-я]?(?:/\d{1,4})?|,?\s\d{1,4}[А-Яа-я]?(?:/\d{1,4})?)(?![\d.,]\d|\d)"
_EXTRA = (
    r"(?:,?\s?(?i:корп\.?|корпус|к\.|стр\.?|строение|лит\.?|литер[аы]?)\s?\d{1,3}[А-Яа-я]?)*"
    r"(?:,?\s?(?i:кв\.?|квартира|оф\.?|офис|пом\.?|помещение|комн\.?|комната)\s?\d{1,4}[А-Яа-я]?)?"
)
_SETTLEMENT = (
    rf"(?:г\.|гор\.|город|пос\.|пгт\.?|с\.|село|дер\.|деревня|ст-ца|станица)\s?{_WORD}(?:[\s-]{_WORD})?"
)
_REGION = (
    rf"(?:{_ADJ}\s(?:обл\.|область|кр\.|край|р-н|район|АО)|(?:Республика|Респ\.)\s{_WORD}"
    r"|Россия|Российская\sФедерация|РФ|\d{6})"
)
_PREFIX = rf"(?:(?:{_REGION}|{_SETTLEMENT}),?\s)*"

_ADDRESS = re.compile(rf"(?<![\w.])(?P<addr>{_PREFIX}{_STREET})(?P<house>{_HOUSE}{_EXTRA})?")
_SETTLEMENT_ONLY = re.compile(rf"(?<![\w.]){_SETTLEMENT}")
#: house, building and flat numbers that may follow a place the NER model found («Тверская 7 кв 5»)
HOUSE_TAIL = re.compile(rf"{_HOUSE}{_EXTRA}")

#: words that introduce where a person lives or is registered
ADDRESS_CTX = re.compile(
    r"адрес|прожива|зарегистрир|регистраци|прописк|прописан|мест\w*\s+жительств|жив[уеё]|жил[аи]?\b|переехал"
    r"|мест\w*\s+рождени|родил(?:ся|ась)\s+в",
    re.I,
)


def detect_addresses(text: str) -> Iterator[Finding]:
    """Street addresses (with house number: 0.9; street only: 0.45 or 0.8 with context) and settlements."""
    covered: list[tuple[int, int]] = []
    for m in _ADDRESS.finditer(text):
        end = m.end()
        if m.group("house"):
            conf = 0.9
        else:
            end = m.end("addr")
            conf = 0.8 if near(text, m.start(), end, ADDRESS_CTX, left=40) else 0.45
        covered.append((m.start(), end))
        yield Finding(PiiKind.ADDRESS, m.start(), end, conf, "regex")
    for m in _SETTLEMENT_ONLY.finditer(text):
        if any(s <= m.start() < e for s, e in covered):
            continue
        ctx = near(text, m.start(), m.end(), ADDRESS_CTX, left=40)
        kind = PiiKind.ADDRESS if ctx else PiiKind.LOCATION
        yield Finding(kind, m.start(), m.end(), 0.7 if ctx else 0.6, "regex")
