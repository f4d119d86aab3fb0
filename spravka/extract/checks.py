"""Checks of extracted values: against the document (is the value there at all?), against
arithmetic (control digits of Russian requisites), and against each other (amounts add up).

Grounding is the check against hallucination: a model that cannot find a field must say null,
and a value it wrote that the document does not contain (in any usual spelling: «1 234,50» for
1234.5, «05.03.2026» or «5 марта 2026 г.» for 2026-03-05) is flagged for a person.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from difflib import SequenceMatcher
from typing import Any

from spravka.extract.schema import FieldSpec, Schema


@dataclass(frozen=True, slots=True)
class Issue:
    field: str
    #: missing (a required field is null), not_in_document (not grounded), invalid (control digits,
    #: a date that is no date), inconsistent (amounts that do not add up)
    kind: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "kind": self.kind, "message": self.message}


# ---- control digits --------------------------------------------------------------------------------
def _digits(s: Any) -> str:
    return re.sub(r"\D", "", str(s or ""))


def inn_ok(value: str) -> bool:
    """ИНН: 10 digits (an organisation) or 12 (a person), with the tax service's check digits."""
    d = [int(c) for c in str(value)] if str(value).isdigit() else []

    def check(weights: list[int]) -> int:
        return sum(w * x for w, x in zip(weights, d, strict=False)) % 11 % 10

    if len(d) == 10:
        return check([2, 4, 10, 3, 5, 9, 4, 6, 8]) == d[9]
    if len(d) == 12:
        return (check([7, 2, 4, 10, 3, 5, 9, 4, 6, 8]) == d[10]
                and check([3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]) == d[11])
    return False


def kpp_ok(value: str) -> bool:
    return bool(re.fullmatch(r"\d{4}[\dA-Z]{2}\d{3}", str(value)))


def bik_ok(value: str) -> bool:
    return bool(re.fullmatch(r"\d{9}", str(value)))


def _key_ok(digits: str) -> bool:
    """The Bank of Russia account key: weights 7,1,3 over 23 digits, sum of last digits ≡ 0 mod 10."""
    return sum((int(c) * (7, 1, 3)[i % 3]) % 10 for i, c in enumerate(digits)) % 10 == 0


def account_ok(value: str, bik: str | None) -> bool:
    """A settlement account: 20 digits; with the bank's BIK, its control key too."""
    if not re.fullmatch(r"\d{20}", str(value)):
        return False
    return _key_ok(bik[-3:] + value) if bik and bik_ok(bik) else True


def corr_account_ok(value: str, bik: str | None) -> bool:
    """A correspondent account: 20 digits starting 301; with the BIK, its control key too."""
    if not re.fullmatch(r"301\d{17}", str(value)):
        return False
    return _key_ok("0" + bik[4:6] + value) if bik and bik_ok(bik) else True


# ---- dates -------------------------------------------------------------------------------------------
_MONTHS = {
    "январ": 1, "феврал": 2, "март": 3, "апрел": 4, "ма": 5, "июн": 6, "июл": 7, "август": 8, "сентябр": 9,
    "октябр": 10, "ноябр": 11, "декабр": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10,
    "nov": 11, "dec": 12,
}
_NUMERIC_DATE = re.compile(r"(?<!\d)(\d{1,2})[./-](\d{1,2})[./-](\d{4}|\d{2})(?!\d)")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_WORD_DATE = re.compile(r"(?<!\d)(\d{1,2})\s*[-\s]?\s*([а-яёa-z]{3,9})\.?,?[\s-]+(\d{4}|\d{2})(?!\d)", re.IGNORECASE)
_WORD_DATE_US = re.compile(r"\b([a-z]{3,9})\.?\s+(\d{1,2}),?\s+(\d{4})(?!\d)", re.IGNORECASE)


def month_number(word: str) -> int | None:
    w = word.lower().replace("ё", "е")
    for stem, m in sorted(_MONTHS.items(), key=lambda kv: -len(kv[0])):
        if w.startswith(stem) and (stem != "ма" or w in ("мая", "май")):
            return m
    return None


def _mk(y: int, m: int, d: int) -> dt.date | None:
    if y < 100:
        y += 2000 if y < 70 else 1900
    try:
        return dt.date(y, m, d)
    except ValueError:
        return None


def dates_in(text: str) -> set[dt.date]:
    """Every date written in the text, in the usual Russian and English spellings."""
    out: set[dt.date] = set()
    for d, m, y in _NUMERIC_DATE.findall(text):
        for dd, mm in ((d, m), (m, d)):  # 11/01/2019 may be day-first or month-first
            got = _mk(int(y), int(mm), int(dd))
            if got:
                out.add(got)
    for y, m, d in _ISO_DATE.findall(text):
        got = _mk(int(y), int(m), int(d))
        if got:
            out.add(got)
    for d, word, y in _WORD_DATE.findall(text):
        m = month_number(word)
        got = _mk(int(y), m, int(d)) if m else None
        if got:
            out.add(got)
    for word, d, y in _WORD_DATE_US.findall(text):
        m = month_number(word)
        got = _mk(int(y), m, int(d)) if m else None
        if got:
            out.add(got)
    return out


def parse_date(value: str) -> dt.date | None:
    """A date value as a model may write it (ISO asked for; other spellings accepted)."""
    s = str(value or "").strip()
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", s)
    if m:
        return _mk(int(m[1]), int(m[2]), int(m[3]))
    m = _NUMERIC_DATE.search(s)  # «12.03.2018 10:22» too
    if m:  # day first (Russia, most of the world); month first only when the day-first reading is impossible
        return _mk(int(m[3]), int(m[2]), int(m[1])) or _mk(int(m[3]), int(m[1]), int(m[2]))
    found = sorted(dates_in(s))
    return found[0] if len(found) == 1 else None


# ---- numbers and strings -------------------------------------------------------------------------------
_NUM = re.compile(r"(?<![\d])\d[\d \u00a0\u202f'.,]*\d|(?<![\d.,])\d(?![\d])")


def _parse_number(token: str) -> set[Decimal]:
    """The values a number token can mean: «1 234,50» → 1234.50; «1,234.50» → 1234.50; «1.234» → 1.234 and 1234."""
    out: set[Decimal] = set()
    t = re.sub(r"[ \u00a0\u202f']", "", token).rstrip(".,")
    cands = [t]

    def grouped(sep: str) -> bool:  # 1,234 or 1.234.567: every group after the first has 3 digits
        head, *groups = t.split(sep)
        return 1 <= len(head) <= 3 and all(len(g) == 3 for g in groups)

    if "," in t and "." in t:
        dec = max(t.rfind(","), t.rfind("."))
        cands = [re.sub(r"[.,]", "", t[:dec]) + "." + t[dec + 1 :]]
    else:
        sep = "," if "," in t else "." if "." in t else ""
        if sep:
            cands = ([t.replace(sep, "")] if grouped(sep) else []) + ([t.replace(sep, ".")] if t.count(sep) == 1 else [])
    for c in cands:
        try:
            out.add(Decimal(c).quantize(Decimal("0.01")))
        except (InvalidOperation, ValueError):
            continue
    return out


def numbers_in(text: str) -> set[Decimal]:
    out: set[Decimal] = set()
    for token in _NUM.findall(text):
        out |= _parse_number(token)
        # a space both groups thousands («41 365,00») and separates table cells («10 1 890,50»):
        # every run of parts that reads as one number counts
        parts = [p for p in re.split(r"[ \u00a0\u202f]+", token) if p]
        for i in range(len(parts)):
            run = parts[i]
            out |= _parse_number(run)
            for nxt in parts[i + 1 :]:
                if re.search(r"[.,]\d{1,2}$", run) or not re.fullmatch(r"\d{3}([.,]\d+)?", nxt):
                    break
                run += " " + nxt
                out |= _parse_number(run)
    return out


def _norm(s: str) -> str:
    s = str(s).casefold().replace("ё", "е")
    s = re.sub(r"[«»“”„\"'`]", "", s)
    s = re.sub(r"[‐‑‒–—−]", "-", s)
    return re.sub(r"\s+", " ", s).strip()


def _squash(s: str) -> str:
    """For likeness of copied text: case, spaces and quote marks aside."""
    return re.sub(r"\s+", "", _norm(s))


def _tokens(s: str) -> list[str]:
    return [t for t in re.findall(r"[\w]+", _norm(s)) if len(t) > 1 or t.isdigit()]


class Document:
    """The source text, indexed once for every grounding check."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.norm = _norm(text)
        self.tokens = set(_tokens(text))
        self.digits = re.sub(r"[ \u00a0\u202f-]", "", text)
        self.numbers = numbers_in(text)
        self.dates = dates_in(text)
        self._words: list[tuple[str, str]] | None = None

    def has_string(self, value: str) -> bool:
        v = _norm(value)
        if not v or v in self.norm:
            return True
        if re.fullmatch(r"[\d ]+", v):  # requisites: the digits, spacing aside
            return v.replace(" ", "") in self.digits
        toks = _tokens(value)
        # reflowed lines and OCR slips: nearly every word of the value is in the document
        return bool(toks) and sum(t in self.tokens for t in toks) >= max(1, round(0.8 * len(toks)))

    def snap(self, value: str, min_ratio: float = 0.9) -> str | None:
        """The document's own words for a string the model copied with slips (a comma added, «SRI
        PUTRA» run together, a line break): the run of source words closest to ``value``, when it
        is at least ``min_ratio`` alike (spaces and case aside), else None."""
        v = _squash(value)
        if len(v) < 4:
            return None
        if self._words is None:
            self._words = [(m.group(0), _squash(m.group(0))) for m in re.finditer(r"\S+", self.text)]
        words = self._words
        vwords = [w for w in (_squash(x) for x in value.split()) if w]
        n = len(vwords)
        if not n or not words:
            return None
        heads = {w[:3] for w in vwords[:3]}  # a run starts at one of the value's first words
        best: tuple[float, int, int] | None = None
        for i, (_, sw) in enumerate(words):
            if sw[:3] not in heads:
                continue
            for j in range(i + max(1, n - 3), min(len(words), i + n + 3) + 1):
                cand = "".join(w for _, w in words[i:j])
                ratio = SequenceMatcher(None, cand, v, autojunk=False).ratio()
                if best is None or ratio > best[0] + 1e-9:
                    best = (ratio, i, j)
        if best is None or best[0] < min_ratio:
            return None
        return " ".join(w for w, _ in words[best[1]:best[2]]).rstrip(",;:")  # not the comma after it

    def has_number(self, value: float | int) -> bool:
        try:
            return Decimal(str(value)).quantize(Decimal("0.01")) in self.numbers
        except InvalidOperation:
            return False

    def has_date(self, value: dt.date) -> bool:
        return value in self.dates


# ---- the whole record ------------------------------------------------------------------------------------
#: the issues' messages in the schema's language: a person reads them beside the document
_MESSAGES = {
    "ru": {"not_a_date": "«{value}» — не дата", "date_absent": "даты {value} нет в документе",
           "number_absent": "числа {value} нет в документе", "string_absent": "«{value}» нет в документе",
           "missing": "обязательное поле не найдено", "check": "«{value}» не проходит проверку {check}",
           "control_digits": " (контрольные цифры)", "item_amount": "{q} × {p} = {qp}, а не {a}",
           "items_total": "позиции дают в сумме {s}, а итог — {total}",
           "vat": "НДС {rate}% от {total} — это {expected}, а не {vat}"},
    "en": {"not_a_date": "'{value}' is not a date", "date_absent": "the date {value} is not in the document",
           "number_absent": "the number {value} is not in the document",
           "string_absent": "'{value}' is not in the document", "missing": "required, not found",
           "check": "'{value}' fails the {check} check", "control_digits": " (control digits)",
           "item_amount": "{q} × {p} = {qp}, not {a}", "items_total": "the items add up to {s}, the total is {total}",
           "vat": "VAT {rate}% of {total} is {expected}, not {vat}"},
}
_CHECK_NAMES = {
    "ru": {"inn": "ИНН", "kpp": "КПП", "bik": "БИК", "account": "расчётного счёта", "corr_account": "корр. счёта"},
    "en": {"inn": "INN", "kpp": "KPP", "bik": "BIK", "account": "ACCOUNT", "corr_account": "CORR_ACCOUNT"},
}


def _say(language: str, key: str, **values: Any) -> str:
    return _MESSAGES.get(language, _MESSAGES["en"])[key].format(**values)


def normalise(schema: Schema, data: dict[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
    """Types the model may blur, made canonical: dates to ISO, requisites to their digits."""
    issues: list[Issue] = []
    lang = schema.spec.lang
    out = dict(data)

    def fix(name: str, f: FieldSpec, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and not value.strip():
            return None
        if f.type == "date":
            d = parse_date(str(value))
            if d is None:
                issues.append(Issue(name, "invalid", _say(lang, "not_a_date", value=value)))
                return value
            return d.isoformat()
        if f.check in ("inn", "bik", "account", "corr_account"):
            return _digits(value) or value
        if f.check == "kpp":
            return re.sub(r"\s", "", str(value)).upper()
        return value

    for name, f in schema.spec.fields.items():
        if f.type == "list":
            items = []
            for i, item in enumerate(out.get(name) or []):
                row = dict(item or {})
                for sub, sf in (f.fields or {}).items():
                    row[sub] = fix(f"{name}[{i}].{sub}", sf, row.get(sub))
                items.append(row)
            out[name] = items or None
        else:
            out[name] = fix(name, f, out.get(name))
    return out, issues


def snap_record(schema: Schema, data: dict[str, Any], doc: Document) -> tuple[dict[str, Any], dict[str, str]]:
    """Plain string fields (grounded, no requisite check) in the document's own words when the
    model's copy is close to a run of them but not exact (:meth:`Document.snap`). Returns the
    record and what the model had written in each field it changed (``items[0].name`` for a list
    item's field)."""
    changed: dict[str, str] = {}

    def fix(where: str, f: FieldSpec, value: Any) -> Any:
        if not isinstance(value, str) or f.type != "string" or not f.ground or f.check is not None:
            return value
        if _norm(value) in doc.norm:
            return value
        snapped = doc.snap(value)
        if snapped is None or snapped == value:
            return value
        changed[where] = value
        return snapped

    out = dict(data)
    for name, f in schema.spec.fields.items():
        if f.type == "list" and out.get(name):
            out[name] = [{**row, **{sub: fix(f"{name}[{i}].{sub}", sf, row.get(sub))
                                    for sub, sf in (f.fields or {}).items() if sub in row}}
                         for i, row in enumerate(out[name])]
        elif name in out:
            out[name] = fix(name, f, out[name])
    return out, changed


def check_record(schema: Schema, data: dict[str, Any], doc: Document) -> list[Issue]:
    """Everything wrong with a normalised record: missing, not in the document, invalid, inconsistent."""
    issues: list[Issue] = []
    lang = schema.spec.lang

    def ground(name: str, f: FieldSpec, value: Any) -> None:
        if value is None or f.type == "boolean" or not f.ground:
            return
        if f.type == "date":
            d = parse_date(str(value))
            if d is not None and not doc.has_date(d):
                issues.append(Issue(name, "not_in_document", _say(lang, "date_absent", value=value)))
        elif f.type in ("number", "integer"):
            if isinstance(value, int | float) and not doc.has_number(value):
                issues.append(Issue(name, "not_in_document", _say(lang, "number_absent", value=value)))
        elif not doc.has_string(str(value)):
            issues.append(Issue(name, "not_in_document", _say(lang, "string_absent", value=str(value)[:80])))

    for name, f in schema.spec.fields.items():
        value = data.get(name)
        if value is None:
            if f.required:
                issues.append(Issue(name, "missing", _say(lang, "missing")))
            continue
        if f.type == "list":
            for i, row in enumerate(value):
                for sub, sf in (f.fields or {}).items():
                    ground(f"{name}[{i}].{sub}", sf, row.get(sub))
            continue
        ground(name, f, value)

    bik = next((str(data[n]) for n, f in schema.spec.fields.items() if f.check == "bik" and data.get(n)), None)
    for name, f in schema.spec.fields.items():
        value = data.get(name)
        if value is None or f.check is None:
            continue
        ok = {"inn": lambda v: inn_ok(v), "kpp": kpp_ok, "bik": bik_ok,
              "account": lambda v: account_ok(v, bik), "corr_account": lambda v: corr_account_ok(v, bik)}[f.check](str(value))
        if not ok:
            issues.append(Issue(name, "invalid", _say(lang, "check", value=value, check=_CHECK_NAMES[lang][f.check])
                                + (_say(lang, "control_digits") if f.check in ("inn", "account", "corr_account") else "")))
    issues += _rules(schema, data)
    return issues


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _close(a: float, b: float, rel: float = 0.005) -> bool:
    return abs(a - b) <= max(0.011, rel * max(abs(a), abs(b)))


def _rules(schema: Schema, data: dict[str, Any]) -> list[Issue]:
    issues: list[Issue] = []
    lang = schema.spec.lang
    items = [r for r in (data.get("items") or []) if isinstance(r, dict)]
    total, vat, rate = _num(data.get("total")), _num(data.get("vat_amount")), _num(data.get("vat_rate"))
    amounts = [_num(r.get("amount")) for r in items]
    if "item_amounts" in schema.spec.rules:
        for i, r in enumerate(items):
            q, p, a = _num(r.get("quantity")), _num(r.get("price")), _num(r.get("amount"))
            if q is not None and p is not None and a is not None and not _close(q * p, a):
                issues.append(Issue(f"items[{i}].amount", "inconsistent",
                                    _say(lang, "item_amount", q=f"{q:g}", p=f"{p:.2f}", qp=f"{q * p:.2f}", a=f"{a:.2f}")))
    if "items_total" in schema.spec.rules and total is not None and amounts and all(a is not None for a in amounts):
        s = sum(a for a in amounts if a is not None)
        if not (_close(s, total) or (vat is not None and _close(s + vat, total))):
            issues.append(Issue("total", "inconsistent", _say(lang, "items_total", s=f"{s:.2f}", total=f"{total:.2f}")))
    if "vat" in schema.spec.rules and total is not None and vat is not None and rate:
        expected = total * rate / (100 + rate)
        net = sum(a for a in amounts if a is not None) if amounts and all(a is not None for a in amounts) else None
        if not (_close(vat, expected, 0.01) or (net is not None and _close(vat, net * rate / 100, 0.01))):
            issues.append(Issue("vat_amount", "inconsistent",
                                _say(lang, "vat", rate=f"{rate:g}", total=f"{total:.2f}", expected=f"{expected:.2f}",
                                     vat=f"{vat:.2f}")))
    return issues
