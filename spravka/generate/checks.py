"""Checks on both sides of a generated text.

**Inputs** are validated before any model runs: unknown or missing fields, types, lengths,
patterns and choices are clear errors (nothing is generated from bad data). Text that reads like
an instruction to the model («игнорируй предыдущие инструкции», "you are now…") is not refused,
since a customer may quote anything, but the result always goes to a person.

**Outputs** are held to the facts and to the tone of voice:

* *unsupported*: the hallucination check. Every number (amounts, dates, days, phone numbers) and
  every proper name (Latin words, «quoted» names, capitalised words mid-sentence) must come from
  the inputs, the task, the knowledge-base passages or the tone's company name and signature.
  The tone's *examples* are deliberately not evidence: a phone number copied from an example
  is an invention. Shared with the answer post-check (``answer/check.py: unsupported_facts``).
* *reversed*: a sentence that says the opposite of a knowledge-base passage saying nearly the
  same thing («можно» where the passage says «нельзя»; ``answer/polarity.py``). Only passages
  count: a reply may rightly contradict what the customer wrote.
* *missing*: a value the template ``must_include`` (an order number) is not in the text.
* *placeholder*: a blank left to fill («[Имя]», «{date}», «XXX», «___»).
* *language*: the text is not in the template's language.
* *address*: «ты» in a formal tone (or a lower-case «вы» where the tone wants «Вы»).
* *banned*: a phrase the tone never uses, matched by lemmas («данного» is «данный»).
* *length*: fewer or more words than the template allows; *exclamations*, *emoji*.
* *long_sentence*: a sentence over the tone's limit. The only warning: it is reported, and does
  not send the text to a person.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spravka.answer.check import numbers_in, unsupported_facts
from spravka.answer.language import detect_language
from spravka.answer.polarity import reversed_claims
from spravka.core.errors import InputError
from spravka.core.text.lemmas import lemma, words
from spravka.extract.checks import dates_in, month_number, parse_date
from spravka.generate.template import InputSpec, TemplateSpec, ToneSpec

#: kinds reported without sending the text to a person
WARNINGS = frozenset({"long_sentence"})


@dataclass(frozen=True, slots=True)
class Issue:
    kind: str
    message: str
    field: str = ""

    @property
    def blocking(self) -> bool:
        return self.kind not in WARNINGS

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message, "field": self.field}


# ---- inputs --------------------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\u2060\ufeff]")
_INJECTION = re.compile(
    r"(игнорир\w*|забудь\w*|не\s+обращай\s+внимани\w*\s+на)\s+(все\s+|всё\s+)?(предыдущ\w+|прошл\w+|свои|эти|"
    r"системн\w+)?\s*(инструкци\w+|указани\w+|правил\w*|промпт\w*)"
    r"|ignore\s+(all\s+)?(the\s+)?(previous|prior|above|earlier)\s+(instructions|rules|prompts?)"
    r"|disregard\s+(all\s+)?(previous|prior|the\s+above)|system\s+prompt|системн\w+\s+(промпт|сообщени|инструкци)"
    r"|you\s+are\s+now\b|теперь\s+ты\b|ты\s+теперь\b|act\s+as\s+(an?\s+)?\w+|new\s+instructions?:",
    re.IGNORECASE)


#: the issues' messages in the template's language: a person reviews them in the console, and the
#: rewrite prompt quotes them to the model
_MESSAGES = {
    "ru": {
        "injection": "поле «{name}» похоже на инструкцию модели: результат должен проверить человек",
        "unsupported": "нет ни во входных данных, ни в источниках: {items}",
        "reversed": "смысл обратный источнику: «{sentence}»",
        "missing": "в тексте нет {name} «{value}»",
        "placeholder": "оставлен пропуск: «{blank}»",
        "language": "текст не на языке шаблона ({lang})",
        "informal": "«{word}» в тоне, где к читателю обращаются на «вы»",
        "capital": "«{word}» со строчной буквы: в этом тоне пишут «Вы», «Ваш»",
        "banned": "«{phrase}» не из этого тона",
        "length": "слов: {n}, а шаблону нужно от {lo} до {hi}",
        "exclamations": "восклицательных знаков: {n}, а тон допускает {limit}",
        "emoji": "эмодзи в тоне без них",
        "long_sentence": "в предложении слов: {n}, а предел тона — {limit}",
    },
    "en": {
        "injection": "input '{name}' reads like an instruction to the model; a person must check the result",
        "unsupported": "not in the inputs or sources: {items}",
        "reversed": "says the opposite of the source: «{sentence}»",
        "missing": "the text must include {name} «{value}»",
        "placeholder": "a blank is left to fill: «{blank}»",
        "language": "the text is not in the template's language ({lang})",
        "informal": "«{word}» in a tone that addresses readers formally",
        "capital": "«{word}» with a small letter; this tone writes «Вы», «Ваш»",
        "banned": "«{phrase}» is not in this tone of voice",
        "length": "{n} words; the template wants {lo}–{hi}",
        "exclamations": "{n} exclamation marks; the tone allows {limit}",
        "emoji": "emoji in a tone without them",
        "long_sentence": "a sentence of {n} words; the tone's limit is {limit}",
    },
}


def _say(language: str, key: str, **values: Any) -> str:
    return _MESSAGES.get(language, _MESSAGES["en"])[key].format(**values)


def validate_inputs(template: TemplateSpec, inputs: dict[str, Any]) -> tuple[dict[str, str], list[Issue]]:
    """The inputs as the prompt's strings, and the non-fatal issues (text that reads like an
    instruction). Anything the template cannot be filled from raises ``InputError``."""
    unknown = sorted(set(inputs) - set(template.inputs))
    if unknown:
        raise InputError(f"template '{template.name}' has no input {', '.join(repr(u) for u in unknown)}",
                         hint="its inputs: " + (", ".join(template.inputs) or "none"))
    values: dict[str, str] = {}
    issues: list[Issue] = []
    for name, spec in template.inputs.items():
        raw = inputs.get(name, spec.default)
        if raw is None or (isinstance(raw, str) and not raw.strip()) or raw == []:
            if spec.required:
                raise InputError(f"input '{name}' is required" + (f": {spec.description}" if spec.description else ""))
            continue
        value = _coerce(name, spec, raw, template.language)
        values[name] = value
        if _INJECTION.search(value):
            issues.append(Issue("injection", _say(template.language, "injection", name=name), name))
    return values, issues


def _coerce(name: str, spec: InputSpec, raw: Any, language: str) -> str:
    if spec.type == "list":
        items = raw if isinstance(raw, list) else [x for x in str(raw).split("\n")]
        items = [_text(name, str(x), spec) for x in items if str(x).strip()]
        if len(items) > spec.max_items:
            raise InputError(f"input '{name}' has {len(items)} items, more than {spec.max_items}")
        return "\n".join(f"- {x}" for x in items)
    if isinstance(raw, (dict, list)):
        raise InputError(f"input '{name}' must be a {spec.type}, not a {type(raw).__name__}")
    value = _text(name, str(raw), spec)
    if spec.type in ("number", "integer"):
        try:
            number = float(re.sub(r"[\s\u00a0\u202f]", "", value).replace(",", "."))
        except ValueError:
            raise InputError(f"input '{name}' must be a number, not {value[:40]!r}") from None
        if spec.type == "integer" and not number.is_integer():
            raise InputError(f"input '{name}' must be a whole number, not {value[:40]!r}")
    elif spec.type == "date":
        day = parse_date(value)
        if day is None:
            raise InputError(f"input '{name}' must be a date (2026-03-05, 05.03.2026, 5 марта 2026), not {value[:40]!r}")
        value = _written_date(day, language)
    elif spec.type == "choice" and value not in (spec.choices or []):
        raise InputError(f"input '{name}' must be one of: {', '.join(spec.choices or [])}; not {value[:40]!r}")
    if spec.pattern and not re.fullmatch(spec.pattern, value):
        raise InputError(f"input '{name}' does not match its pattern {spec.pattern}: {value[:40]!r}")
    return value


def _text(name: str, value: str, spec: InputSpec) -> str:
    if "\x00" in value:
        raise InputError(f"input '{name}' contains a NUL byte")
    value = _CONTROL.sub("", value).strip()
    if spec.type != "text":
        value = re.sub(r"\s+", " ", value)
    if len(value) > spec.limit:
        raise InputError(f"input '{name}' is {len(value)} characters long, over its limit of {spec.limit}")
    return value


_MONTHS_GEN = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
               "ноября", "декабря")


_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December")


def _written_date(day: dt.date, language: str) -> str:
    """A date as the text should write it («5 марта 2026», "5 March 2026"): the model copies it."""
    if language == "en":
        return f"{day.day} {_MONTHS_EN[day.month - 1]} {day.year}"
    return f"{day.day} {_MONTHS_GEN[day.month - 1]} {day.year}"


# ---- outputs -------------------------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{[^{}\n]{1,40}\}|\[[^\[\]\n]{2,40}\]|<[А-Яа-яA-Za-z ]{2,30}>|\bX{3,}\b|_{3,}|…\s*…")
_INFORMAL = frozenset({"ты", "тебя", "тебе", "тобой", "тобою", "твой", "твоя", "твоё", "твое", "твои", "твоего",
                       "твоей", "твоему", "твоим", "твоих", "твою", "твоими"})
_FORMAL_LOWER = re.compile(r"(?<![.!?…]\s)(?<!^)\b(вы|вас|вам|вами|ваш|ваша|ваше|ваши|вашего|вашей|вашему|вашим|"
                           r"ваших|вашу|вашими)\b")
_EMOJI = re.compile("[\U0001f300-\U0001faff\U00002600-\U000027bf\U0001f000-\U0001f2ff]")
_WORDS = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")
_SENTENCES = re.compile(r"(?<=[.!?…])\s+|\n+")


def _exclamations(text: str) -> int:
    """«!» outside the salutation: «Здравствуйте, Анна!» on its own is how Russian letters open."""
    first, _, rest = text.strip().partition("\n")
    if word_count(first) <= 5 and first.rstrip().endswith("!") and first.count("!") == 1:
        return rest.count("!")
    return text.count("!")


def word_count(text: str) -> int:
    return len(_WORDS.findall(text))


def check_text(text: str, template: TemplateSpec, tone: ToneSpec, *, values: dict[str, str],
               evidence: str, passages: Sequence[str] = ()) -> list[Issue]:
    """Every issue of a generated ``text`` (see the module docstring); ``passages`` are the
    knowledge-base passages among the ``evidence``."""
    issues: list[Issue] = []
    lang = template.language
    bad = unsupported_facts(_PLACEHOLDER.sub(" ", text), evidence)  # a blank is its own issue
    if bad:
        issues.append(Issue("unsupported", _say(lang, "unsupported", items=", ".join(bad[:10]))))
    for sentence in reversed_claims(text, passages)[:3] if passages else ():
        issues.append(Issue("reversed", _say(lang, "reversed", sentence=sentence[:160])))
    flat = _flat(text)
    for name in template.must_include:
        value = values.get(name)
        if value and not _includes(text, flat, value, template.inputs[name].type):
            issues.append(Issue("missing", _say(lang, "missing", name=name, value=value[:60]), name))
    if m := _PLACEHOLDER.search(text):
        issues.append(Issue("placeholder", _say(lang, "placeholder", blank=m.group(0))))
    if word_count(text) >= 5 and detect_language(text) != template.language:
        issues.append(Issue("language", _say(lang, "language", lang=template.language)))
    words = [w.lower() for w in _WORDS.findall(text)]
    if tone.address == "formal" and (informal := sorted(set(words) & _INFORMAL)):
        issues.append(Issue("address", _say(lang, "informal", word=informal[0])))
    if tone.capital_vy and (m := _FORMAL_LOWER.search(text)):
        issues.append(Issue("address", _say(lang, "capital", word=m.group(0))))
    lemmas = " " + _lemmas(text) + " "
    for phrase in tone.banned:
        target = _lemmas(phrase)
        if target and f" {target} " in lemmas:
            issues.append(Issue("banned", _say(lang, "banned", phrase=phrase)))
    n = word_count(text)
    if n < template.min_words or n > template.max_words:
        issues.append(Issue("length", _say(lang, "length", n=n, lo=template.min_words, hi=template.max_words)))
    marks = _exclamations(text)
    if marks > tone.max_exclamations:
        issues.append(Issue("exclamations", _say(lang, "exclamations", n=marks, limit=tone.max_exclamations)))
    if not tone.emoji and _EMOJI.search(text):
        issues.append(Issue("emoji", _say(lang, "emoji")))
    longest = max((word_count(s) for s in _SENTENCES.split(text)), default=0)
    if longest > tone.max_sentence_words:
        issues.append(Issue("long_sentence", _say(lang, "long_sentence", n=longest, limit=tone.max_sentence_words)))
    return issues


def mentions(text: str, phrase: str) -> bool:
    """Does ``text`` say ``phrase``: as written, as a date in any spelling, as the same numbers,
    or in other word forms («возврат денег» in «возврата денег»)? For golden sets."""
    if parse_date(phrase) is not None and _includes(text, "", phrase, "date"):
        return True
    if re.fullmatch(r"[\d\s\u00a0\u202f.,]+", phrase.strip() or "x"):  # a number: a whole one, not «30» in a phone
        want = _number_key(phrase)
        for token in map(_number_key, _NUMBER_TOKEN.findall(text)):
            parts = token.split("-")
            if token == want or (len(parts) == 2 and want in parts):  # «7-14 дней» says 7; a phone does not
                return True
        return False
    if _includes(text, _flat(text), phrase, "string"):
        return True
    target = _lemmas(phrase)
    return bool(target) and f" {target} " in f" {_lemmas(text)} "


def _includes(text: str, flat: str, value: str, kind: str) -> bool:
    """Is ``value`` in the text in some usual spelling (a date as 03.12.2026, a number as 1500)?"""
    if _flat(value) in flat:
        return True
    if kind == "date":
        day = parse_date(value)
        if day is None:
            return False
        if day in dates_in(text):
            return True
        # «с 31 декабря» in a letter of this December: the year goes without saying, unless another is written
        return any(int(d) == day.day and month_number(word) == day.month and not year
                   for d, word, year in _DAY_MONTH.findall(text))
    if kind in ("number", "integer"):
        return numbers_in(value) <= numbers_in(text)
    return False


#: a number as written: digits with thousands groups («100 000»), decimals, or parts joined by
#: hyphens (a phone «100-20-30», an order «77-2051»), each one token
_NUMBER_TOKEN = re.compile(r"(?<![\d.,])\d+(?:[ \u00a0\u202f]\d{3}(?!\d))*(?:[.,]\d+)?(?:[-–]\d+)*")
_DAY_MONTH = re.compile(r"(?<![\d.])(\d{1,2})\s+([а-яёa-z]{3,9})(?:\s+(\d{4}))?", re.IGNORECASE)


def _number_key(text: str) -> str:
    return re.sub(r"[\s\u00a0\u202f]", "", text).replace(",", ".").replace("–", "-")


def _lemmas(text: str) -> str:
    """Every word's lemma, stop words kept («к сожалению» is a phrase, not one word)."""
    return " ".join(lemma(w) for w in words(text))


def _flat(text: str) -> str:
    return re.sub(r"[\s\u00a0\u202f]+", " ", text.lower().replace("ё", "е")).strip()
