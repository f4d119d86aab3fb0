"""The post-check of a generated answer: cited, and no key fact from outside the sources.

Small models cite when told to and still invent a price or a deadline now and then; a wrong
number in a support answer is worse than no answer. The check is deliberately literal:

* there is at least one citation, and every cited number ``[n]`` is one of the sources;
* every number in the answer (amounts, days, dates, percentages, codes) occurs in the cited
  sources or in the question;
* every proper name (Latin-script words, capitalised words inside a sentence, «quoted» names)
  occurs in the cited sources or in the question, compared by lemma or by a 5-letter stem.
* no sentence says the opposite of a cited source sentence that says nearly the same thing
  («можно» where the source says «нельзя»; :mod:`spravka.answer.polarity`);
* something is said: an answer that only repeats the question or the sources' titles fails
  (:mod:`spravka.answer.echo`; the pipeline removes such lines from an answer that has more).

Numbers are compared digit run by digit run (``5 000`` = ``5000``, ``01.04.2023`` gives 1, 4 and
2023), so a date written «1 апреля 2023» still matches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from spravka.answer.echo import has_statement, source_labels, strip_echoes
from spravka.answer.language import detect_language
from spravka.answer.polarity import reversed_claims
from spravka.core.text.lemmas import analyze
from spravka.core.text.stopwords import ALL as STOP_WORDS

CITATION = re.compile(r"\[(\d+(?:\s*[,;–-]\s*\d+)*)\]")
_NUMBER = re.compile(r"\d+(?:[ \u00a0\u202f]\d{3}(?!\d))*")
_DIGITS = re.compile(r"\d+")
#: «1. …», «2) …» at the start of a line: list numbering, not a fact
#: and «… можно: 1) через сайт, 2) в приложении» inside a line
_LIST_MARKER = re.compile(r"(?m)^\s*\d{1,2}[.)]\s+|(?<=[\s:;,])\d{1,2}\)\s+(?=\w)")
_LATIN_WORD = re.compile(r"\b[A-Za-z][A-Za-z0-9\-]*[A-Za-z0-9]\b")
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
#: Latin words are collected by their own pattern
_LATIN_ONLY = re.compile(r"[A-Za-z0-9\-]+")
_QUOTED = re.compile(r"«([^»]{2,60})»")
_SENTENCE_START = re.compile(r"(?:^\s*|[.!?…:]\s+|\n\s*(?:[-–—•*]\s*)?|\]\s+)$")
#: capitalised words that are not names: pronouns of address and sentence openers after lists
_NOT_NAMES = frozenset(
    {"вы", "вам", "вас", "ваш", "ваша", "ваши", "вашего", "вашей", "i", "you", "if", "the", "a", "an"}
)


#: the post-check's problems in each language: English for the logs and notes, Russian for a
#: Russian retry prompt (one that quotes English check messages invites the model to switch)
_MESSAGES = {
    "en": ("no citation", "cites missing sources ", "not in the cited sources: ",
           "says the opposite of the sources: ", "no answer: only the question or the sources' titles repeated"),
    "ru": ("нет ссылки на источник", "ссылки на источники, которых нет: ", "этого нет в указанных источниках: ",
           "смысл обратный источникам: ", "нет ответа: только повтор вопроса или заголовков источников"),
}


@dataclass(frozen=True, slots=True)
class CheckResult:
    #: source numbers cited in the text, in order of first appearance
    cited: list[int] = field(default_factory=list)
    #: key facts not found in the cited sources (numbers and names)
    unsupported: list[str] = field(default_factory=list)
    #: sentences that say the opposite of the cited sources
    reversed: list[str] = field(default_factory=list)
    #: cited numbers with no such source
    missing: list[int] = field(default_factory=list)
    #: nothing but the question or the sources' titles repeated
    empty: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problems(self) -> list[str]:
        """The problems in English (logs, notes)."""
        return self.explain("en")

    def explain(self, language: str = "en") -> list[str]:
        """The problems in ``language`` (Russian, else English), for the retry prompt."""
        none, missing, unsupported, reversed_, empty = _MESSAGES.get(language, _MESSAGES["en"])
        out: list[str] = []
        if not self.cited:
            out.append(none)
        if self.missing:
            out.append(missing + ", ".join(f"[{n}]" for n in self.missing))
        if self.unsupported:
            out.append(unsupported + ", ".join(self.unsupported))
        if self.reversed:
            out.append(reversed_ + " / ".join(f"«{x[:160]}»" for x in self.reversed[:3]))
        if self.empty:
            out.append(empty)
        return out


def citations_in(text: str) -> list[int]:
    """``[1]``, ``[1, 3]``, ``[2-3]`` → source numbers in order of first appearance."""
    out: list[int] = []
    for m in CITATION.finditer(text):
        body = m.group(1)
        if re.search(r"[–-]", body):
            a, b = (int(x) for x in re.split(r"\s*[–-]\s*", body)[:2])
            nums = list(range(a, b + 1)) if 0 < b - a < 20 else [a, b]
        else:
            nums = [int(x) for x in re.split(r"\s*[,;]\s*", body)]
        for n in nums:
            if n not in out:
                out.append(n)
    return out


def strip_citations(text: str) -> str:
    return CITATION.sub("", text)


def numbers_in(text: str) -> set[str]:
    """Digit runs without leading zeros, plus thousands-grouped numbers joined (``5 000`` → 5000)."""
    out: set[str] = set()
    for m in _NUMBER.finditer(text):
        out.add(_canon(m.group(0)))
    for m in _DIGITS.finditer(text):
        out.add(_canon(m.group(0)))
    return out


def answer_numbers(text: str) -> list[str]:
    """The numbers an answer states, as written (joined thousands), each once."""
    return list(dict.fromkeys(_canon(m.group(0)) for m in _NUMBER.finditer(text)))


def _canon(raw: str) -> str:
    digits = re.sub(r"\D", "", raw)
    return digits.lstrip("0") or "0"


def names_in(text: str) -> list[str]:
    """Proper names: Latin-script words, «quoted» names and capitalised words mid-sentence."""
    out: list[str] = []
    for m in _QUOTED.finditer(text):
        out.append(m.group(1).strip())
    # In Russian text every Latin word is a name (DomoVPN, Vortexa); in English only capitals are.
    latin_text = detect_language(text) == "en"
    if not latin_text:
        out.extend(m.group(0) for m in _LATIN_WORD.finditer(text))
    for m in _WORD.finditer(text):
        w = m.group(0)
        if not w[0].isupper() or w.lower() in _NOT_NAMES or (not latin_text and _LATIN_ONLY.fullmatch(w)):
            continue
        if _SENTENCE_START.search(text[: m.start()]):
            continue
        out.append(w)
    seen: dict[str, None] = {}
    for n in out:
        if n.lower() not in STOP_WORDS and n.lower() not in _NOT_NAMES:
            seen.setdefault(n, None)
    return list(seen)


def _name_supported(name: str, lemmas: set[str], lowered: str, evidence: str) -> bool:
    if name.lower() in lowered:
        return True
    parts = [p for p in analyze(name) if p]
    if parts and all(p in lemmas or (len(p) >= 5 and p[:5] in lowered) for p in parts):
        return True
    words = _WORD.findall(name.lower())
    if words and all(len(w) >= 5 and w[:5] in lowered for w in words):
        return True
    # the same name in the other script: «Петрову» for Petrov, «Yulia» for Юлия
    known = _sounds(evidence)
    return bool(words) and all(sound(w) in known or any(sound(x) in known for x in analyze(w)) for w in words)


_CYR = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
                ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r", "s", "t",
                 "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya"], strict=True))
_SOUNDS = [(re.compile(a), b) for a, b in (
    (r"shch|sch|sh", "s"), (r"tch|ch|ts|tz", "c"), (r"kh", "h"), (r"zh", "z"), (r"ph", "f"), (r"x", "ks"),
    (r"w", "v"), (r"ck|q", "k"), (r"[yj]o", "e"),
    (r"[yji](?=[aeou])", ""), (r"[yji](?=[aeou])", ""),  # the glide of я, ю, ия, ья in any spelling
    (r"[yj]", "i"), (r"(.)\1+", r"\1"))]


def sound(word: str) -> str:
    """A rough sound key shared by the Cyrillic and the usual Latin spellings of a name, so that
    transliterations match: Петров / Petrov, Юлия / Yulia / Julia / Iuliia, Щукин / Shchukin,
    Алексей / Aleksey / Alexey, Пётр / Pyotr / Petr. Only ever used to accept a name."""
    w = "".join(_CYR.get(ch, ch) for ch in word.lower())
    for pattern, repl in _SOUNDS:
        w = pattern.sub(repl, w)
    return w


@lru_cache(maxsize=16)  # built only when a name is not found as written, and once per evidence
def _sounds(evidence: str) -> frozenset[str]:
    words = _WORD.findall(evidence.lower())
    return frozenset({sound(w) for w in words} | {sound(x) for w in set(words) for x in analyze(w)})


def unsupported_facts(text: str, evidence: str) -> list[str]:
    """The numbers and proper names of ``text`` that ``evidence`` does not contain: the literal
    hallucination check shared by answers and generated texts."""
    body = _LIST_MARKER.sub("\n", text)  # an item starts a sentence
    unsupported: list[str] = []
    known_numbers = numbers_in(evidence)
    for num in answer_numbers(body):
        if num not in known_numbers:
            unsupported.append(num)
    lowered = evidence.lower().replace("ё", "е")
    lemmas = set(analyze(evidence))
    for name in names_in(body):
        if not _name_supported(name, lemmas, lowered, evidence):
            unsupported.append(name)
    return unsupported


def check_answer(text: str, sources: Sequence[str], question: str = "") -> CheckResult:
    """Check ``text`` against ``sources`` (source ``n`` is ``sources[n - 1]``)."""
    cited = citations_in(text)
    valid = [n for n in cited if 1 <= n <= len(sources)]
    # Without a valid citation the answer fails anyway; checking its facts against every source
    # keeps the problem list (which the retry prompt repeats) about real inventions only.
    passages = "\n".join(sources[n - 1] for n in valid or range(1, len(sources) + 1))
    body = strip_citations(text)
    return CheckResult(
        cited=cited,
        unsupported=unsupported_facts(body, passages + "\n" + question),
        reversed=reversed_claims(body, passages),  # the question may be wrong: only the sources count
        missing=[n for n in cited if n not in valid],
        empty=not has_statement(strip_echoes(text, question, source_labels(sources))[0]),
    )
