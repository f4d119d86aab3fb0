"""Person names by pattern, so that names are caught even without the NER model.

Three shapes are unambiguous enough for rules: a first name followed by a patronymic
(«Пётр Сергеевич», optionally with a surname on either side), a surname with initials
(«Иванов И. И.», «И.И. Иванов»), and a name after a label such as «ФИО:» or «гражданин».
pymorphy3 (already a core dependency) confirms that a word next to a name is a surname.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from spravka.privacy.findings import Finding
from spravka.privacy.kinds import PiiKind

_CAP = r"[А-ЯЁ][а-яё]+(?:-[А-ЯЁ][а-яё]+)?"
_PATRONYMIC = r"[А-ЯЁ][а-яё]+(?:(?:ович|евич|ьич)(?:а|у|ем|е)?|(?:овн|евн|ичн)(?:а|ы|е|у|ой))"
_FULL = re.compile(
    rf"(?<![\w])(?:(?P<before>{_CAP})\s+)?(?P<first>{_CAP})\s+(?P<patr>{_PATRONYMIC})(?![\w])(?:(?=\s+(?P<after>{_CAP})))?"
)
_INITIALS = re.compile(rf"(?<![\w])(?:{_CAP}\s+[А-ЯЁ]\.\s?[А-ЯЁ]\.|[А-ЯЁ]\.\s?[А-ЯЁ]\.\s?{_CAP}(?![\w]))")
_LABELLED = re.compile(
    r"(?:\bФИО|Ф\.\s?И\.\s?О\.|\b[Гг]ражданин[а-я]*|\b[Зз]аявител[а-я]*|\bУважаем[а-я]+|\b[Гг]оспод[а-я]*|"
    r"\b[Гг]оспож[а-я]*|\b[Пп]ациент[а-я]*|\b[Пп]олучател[а-я]*|\b[Ии]сполнител[а-я]*|\b[Оо]тветственн(?:ый|ая|ого|ой|ому))"
    rf"[ \t]*:?[ \t]*(?P<name>{_CAP}(?:[ \t]+{_CAP}){{0,2}})(?![\w])"
)

_lock = threading.Lock()
_morph = None


def _analyzer() -> Any:  # pymorphy3 ships no type stubs
    global _morph
    if _morph is None:
        with _lock:
            if _morph is None:
                import pymorphy3

                _morph = pymorphy3.MorphAnalyzer()
    return _morph


@lru_cache(maxsize=50_000)
def is_surname(word: str) -> bool:
    """Whether pymorphy3 knows ``word`` as a surname (or guesses it from a surname ending)."""
    return any("Surn" in p.tag for p in _analyzer().parse(word))


@lru_cache(maxsize=50_000)
def is_person_word(word: str) -> bool:
    """A first name, surname or patronymic by any plausible pymorphy3 reading.

    Used to veto NER guesses: the news-trained model tags capitalised headings («Ноутбук»,
    «Блокируйте») as persons, and none of those words reads as a name.
    """
    return any(
        p.score >= 0.02 and ({"Name", "Surn", "Patr"} & set(p.tag.grammemes)) for p in _analyzer().parse(word)
    )


@lru_cache(maxsize=50_000)
def is_first_name(word: str) -> bool:
    return any("Name" in p.tag for p in _analyzer().parse(word))


def detect_names(text: str) -> Iterator[Finding]:
    for m in _FULL.finditer(text):
        start, end = m.start("first"), m.end("patr")
        if m.group("before") and is_surname(m.group("before")):
            start = m.start("before")
        if m.group("after") and is_surname(m.group("after")):
            end = m.end("after")
        conf = 0.9 if is_first_name(m.group("first")) else 0.7
        yield Finding(PiiKind.PERSON, start, end, conf, "regex")
    for m in _INITIALS.finditer(text):
        yield Finding(PiiKind.PERSON, m.start(), m.end(), 0.8, "regex")
    for m in _LABELLED.finditer(text):
        # «Получатель: Сбербанк России» is a label too; only words that read as names count
        if any(is_person_word(w) for w in m.group("name").split()):
            yield Finding(PiiKind.PERSON, m.start("name"), m.end("name"), 0.75, "regex")
