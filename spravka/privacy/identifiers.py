"""Checksummed identifiers: passport, SNILS, INN, OGRN/OGRNIP, payment card, bank account.

Each detector finds digit runs of the right shape, keeps the ones whose check digits are right
and scores them by their context. Digits glued to Latin letters, decimals and dashes are left
alone: those are article numbers, versions and amounts, not identifiers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from spravka.privacy import checksums
from spravka.privacy.context import near, nearest_label_is_negative
from spravka.privacy.findings import Finding
from spravka.privacy.kinds import PiiKind

# A number starts after anything but a digit, a Latin letter or a decimal/range separator,
# and ends before the same.
_L = r"(?<![\dA-Za-z_.,/\\-])"
_R = r"(?![\dA-Za-z_]|[.,/\\-]\d)"

_PASSPORT_CTX = re.compile(r"паспорт|серия|серии|удостоверени|личност|выдан", re.I)
_FOREIGN_CTX = re.compile(r"загран|заграничн|international\s+passport", re.I)
_SNILS_CTX = re.compile(
    r"снилс|страхов\w*\s+(?:номер|свидетельств)|пенсионн\w*\s+(?:страхов|свидетельств)", re.I
)
_INN_CTX = re.compile(r"инн|налогов\w*\s+номер|taxpayer|tax\s+id", re.I)
_OGRN_CTX = re.compile(r"огрн|осн\w*\s+гос\w*\s+рег\w*\s+номер", re.I)
_CARD_CTX = re.compile(
    r"карт|card|visa|виза|master\s?card|мастер\s?кард|\bмир\b|maestro|маэстро|amex|unionpay|\bpan\b", re.I
)
_ACCOUNT_CTX = re.compile(
    r"сч[её]т|\bр/с|\bр/сч|\bк/с|\bк/сч|\bл/с|расч[её]тн|корр|лицев|account|\bсч\.", re.I
)
_BIC = re.compile(r"бик\s*:?\s*(\d{9})(?!\d)", re.I)
_ANY_BIC = re.compile(_L + r"(04\d{7})" + _R)
_CURRENCIES = {"810", "643", "840", "978", "156", "826", "756", "392", "398", "933", "051", "949"}

_PASSPORT_LABELLED = re.compile(
    r"сери[яи]\s*:?\s*(?P<series>\d{2}\s?\d{2})\s*,?\s*(?:№|номер|N)\s*:?\s*(?P<number>\d{6})" + _R, re.I
)
_PASSPORT = re.compile(_L + r"(?P<series>\d{2}\s?\d{2})\s?(?:№\s?)?(?P<number>\d{6})" + _R)
_FOREIGN_PASSPORT = re.compile(_L + r"\d{2}\s?№?\s?\d{7}" + _R)
_SNILS_DASHED = re.compile(_L + r"\d{3}-\d{3}-\d{3}[\s-]\d{2}" + _R)
_SNILS_SPACED = re.compile(_L + r"\d{3}\s\d{3}\s\d{3}\s\d{2}" + _R)
_DIGITS = re.compile(_L + r"\d{10,20}" + _R)
_CARD_GROUPED = re.compile(
    _L
    + r"(?:\d{4}(?P<sep>[ -])\d{4}(?P=sep)\d{4}(?P=sep)\d{4}(?:(?P=sep)\d{1,3})?|\d{4}[ -]\d{6}[ -]\d{4,5})"
    + _R
)
_CARD_PREFIX = re.compile(r"(?:2|3[0-8]|4|5|6)")
_ACCOUNT_GROUPED = re.compile(
    _L
    + r"(?:\d{5}[ .]\d{3}[ .]\d[ .]\d{4}[ .]\d{7}|\d{4}(?P<sep>\s)\d{4}(?P=sep)\d{4}(?P=sep)\d{4}(?P=sep)\d{4})"
    + _R
)


def _only_digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def detect_passports(text: str) -> Iterator[Finding]:
    """Internal passport (series of 4 digits + number of 6) and the foreign one (2 + 7)."""
    for m in _PASSPORT_LABELLED.finditer(text):
        if not m.group("series").startswith("00"):
            yield Finding(PiiKind.PASSPORT, m.start("series"), m.end("number"), 0.97, "regex")
    for m in _PASSPORT.finditer(text):
        if m.group("series").startswith("00"):
            continue
        spaced = not m.group(0).isdigit()
        if near(text, m.start(), m.end(), _PASSPORT_CTX, left=50):
            yield Finding(PiiKind.PASSPORT, m.start(), m.end(), 0.95, "regex")
        elif spaced and not nearest_label_is_negative(text, m.start(), _PASSPORT_CTX):
            yield Finding(PiiKind.PASSPORT, m.start(), m.end(), 0.6, "regex")
    for m in _FOREIGN_PASSPORT.finditer(text):
        if near(text, m.start(), m.end(), _FOREIGN_CTX, left=50):
            yield Finding(PiiKind.PASSPORT, m.start(), m.end(), 0.9, "regex")


def detect_snils(text: str) -> Iterator[Finding]:
    """SNILS written «112-233-445 95», «112 233 445 95» or, after the word СНИЛС, as 11 digits."""
    for pattern, bare in ((_SNILS_DASHED, 0.9), (_SNILS_SPACED, 0.8)):
        for m in pattern.finditer(text):
            if not checksums.snils_valid(_only_digits(m.group(0))):
                continue
            ctx = near(text, m.start(), m.end(), _SNILS_CTX, left=50)
            yield Finding(PiiKind.SNILS, m.start(), m.end(), 0.98 if ctx else bare, "checksum")
    for m in _DIGITS.finditer(text):
        value = m.group(0)
        if (
            len(value) == 11
            and checksums.snils_valid(value)
            and near(text, m.start(), m.end(), _SNILS_CTX, left=50)
        ):
            yield Finding(PiiKind.SNILS, m.start(), m.end(), 0.95, "checksum")


def _scored(text: str, m: re.Match[str], ctx: re.Pattern[str], with_ctx: float, bare: float) -> float | None:
    """Context-dependent confidence for a checksum-valid bare number, or None to drop it."""
    if near(text, m.start(), m.end(), ctx, left=60):
        return with_ctx
    if nearest_label_is_negative(text, m.start(), ctx, window=60):
        return None
    return bare


def detect_tax_ids(text: str) -> Iterator[Finding]:
    """INN (10/12 digits), OGRN (13) and OGRNIP (15), all checksummed."""
    for m in _DIGITS.finditer(text):
        value = m.group(0)
        n = len(value)
        conf: float | None = None
        if n in (10, 12) and not value.startswith("00") and checksums.inn_valid(value):
            conf = _scored(text, m, _INN_CTX, 0.95, 0.6 if n == 10 else 0.65)
            kind = PiiKind.INN
        elif n == 13 and checksums.ogrn_valid(value):
            # an unlabelled 13-digit number that is also a valid barcode is taken for a barcode
            bare = 0.0 if value[0] == "2" or checksums.ean13_valid(value) else 0.65
            conf = _scored(text, m, _OGRN_CTX, 0.95, bare)
            kind = PiiKind.OGRN
        elif n == 15 and checksums.ogrnip_valid(value):
            conf = _scored(text, m, _OGRN_CTX, 0.95, 0.65 if value[0] != "4" else 0.0)
            kind = PiiKind.OGRNIP
        if conf:
            yield Finding(kind, m.start(), m.end(), conf, "checksum")


def detect_cards(text: str) -> Iterator[Finding]:
    """Payment cards: 13–19 digits (grouped by spaces or dashes, or not), a card prefix, Luhn."""
    for m in _CARD_GROUPED.finditer(text):
        digits = _only_digits(m.group(0))
        if _CARD_PREFIX.match(digits) and checksums.luhn_valid(digits):
            ctx = near(text, m.start(), m.end(), _CARD_CTX, left=40)
            yield Finding(PiiKind.CARD, m.start(), m.end(), 0.97 if ctx else 0.9, "checksum")
    for m in _DIGITS.finditer(text):
        digits = m.group(0)
        if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and checksums.luhn_valid(digits):
            barcode = len(digits) == 13 and checksums.ean13_valid(digits)
            conf = _scored(text, m, _CARD_CTX, 0.97, 0.0 if barcode else 0.7)
            if conf:
                yield Finding(PiiKind.CARD, m.start(), m.end(), conf, "checksum")


def _nearby_bic(text: str, start: int, end: int) -> list[str]:
    """BICs written within a few lines of an account (bank details are printed together)."""
    window = text[max(0, start - 300) : end + 300]
    labelled = [m.group(1) for m in _BIC.finditer(window)]
    return labelled or [m.group(1) for m in _ANY_BIC.finditer(window)]


def detect_accounts(text: str) -> Iterator[Finding]:
    """20-digit bank accounts; a BIC nearby lets the control key confirm them."""
    candidates = [m for m in _DIGITS.finditer(text) if len(m.group(0)) == 20]
    candidates += list(_ACCOUNT_GROUPED.finditer(text))
    for m in candidates:
        digits = _only_digits(m.group(0))
        bics = _nearby_bic(text, m.start(), m.end())
        if any(checksums.account_key_valid(digits, bic) for bic in bics):
            conf: float | None = 0.98
        elif near(text, m.start(), m.end(), _ACCOUNT_CTX, left=40):
            conf = 0.9
        elif nearest_label_is_negative(text, m.start(), _ACCOUNT_CTX):
            conf = None
        elif digits[5:8] in _CURRENCIES:
            conf = 0.75
        else:
            conf = 0.45  # twenty digits with no currency code and no label: some other reference
        if conf:
            yield Finding(PiiKind.ACCOUNT, m.start(), m.end(), conf, "checksum")


def detect_identifiers(text: str) -> list[Finding]:
    """All checksummed identifiers in ``text`` (overlaps are settled later, by the caller)."""
    out: list[Finding] = []
    for detector in (detect_passports, detect_snils, detect_tax_ids, detect_cards, detect_accounts):
        out.extend(detector(text))
    return out
