"""Cleaning of document text and user questions.

Real inputs are dirty: user questions arrive with URLs and runs of zero-width characters (the
RUTUBE support logs are full of them), PDFs with hyphenated line breaks and page furniture,
HTML with non-breaking spaces. Cleaning is deterministic, so content hashes stay stable.
"""

from __future__ import annotations

import re
import unicodedata

# Zero-width and invisible formatting characters, plus the soft hyphen.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# Page furniture that survives PDF/DOCX extraction.
_BOILERPLATE_LINE = re.compile(
    r"^\s*(?:(?:стр(?:аница)?\.?|page)\s*\d+(?:\s*(?:из|of|/)\s*\d+)?|\d+\s*/\s*\d+|-\s*\d+\s*-)\s*$",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# Letters that look alike in Latin and Cyrillic: a word typed with one of the other script's
# («cтудии» with a Latin c, «Аndroid» with a Cyrillic А) matches nothing in either script.
_LATIN_LOOKALIKES = "aceopxyABCEHKMOPTX"
_CYRILLIC_LOOKALIKES = "асеорхуАВСЕНКМОРТХ"
_TO_CYRILLIC = str.maketrans(_LATIN_LOOKALIKES, _CYRILLIC_LOOKALIKES)
_TO_LATIN = str.maketrans(_CYRILLIC_LOOKALIKES, _LATIN_LOOKALIKES)
_MIXED_WORD = re.compile(r"(?=\w*[а-яёА-ЯЁ])(?=\w*[A-Za-z])\w+")
_LATIN_LETTER = re.compile(r"[A-Za-z]")
_CYRILLIC_LETTER = re.compile(r"[а-яёА-ЯЁ]")

_GREETING = re.compile(
    r"^\s*(?:здравствуйте|здраствуйте|добрый\s+(?:день|вечер|утро)|доброе\s+утро|доброго\s+(?:дня|вечера|времени\s+суток)|"
    r"приветствую|привет|hello|hi|good\s+(?:morning|afternoon|evening))\b[\s!.,)]*",
    re.IGNORECASE,
)


def _one_script(m: re.Match[str]) -> str:
    """A word of mixed scripts in its main script, when the odd letters are look-alikes only."""
    word = m.group(0)
    latin, cyrillic = _LATIN_LETTER.findall(word), _CYRILLIC_LETTER.findall(word)
    if len(cyrillic) >= len(latin) and all(ch in _LATIN_LOOKALIKES for ch in latin):
        return word.translate(_TO_CYRILLIC)
    if len(latin) > len(cyrillic) and all(ch in _CYRILLIC_LOOKALIKES for ch in cyrillic):
        return word.translate(_TO_LATIN)
    return word


def fix_mixed_scripts(text: str) -> str:
    """«cтудии» (a Latin c) → «студии», «Аndroid» (a Cyrillic А) → «Android»: words typed in two
    scripts, where the odd letters look the same in both. Words with other letters of both scripts
    («Правилhttps», a URL run into a word) are left as they are."""
    return _MIXED_WORD.sub(_one_script, text)


def clean_text(text: str, *, dehyphenate: bool = False) -> str:
    """Normalise Unicode, drop invisible characters and boilerplate lines, tidy whitespace, and
    put words typed in two look-alike scripts into one."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", text)
    text = fix_mixed_scripts(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub(" ", text)
    if dehyphenate:
        text = _HYPHEN_BREAK.sub(r"\1\2", text)
    lines = []
    for line in text.split("\n"):
        line = _SPACES.sub(" ", line).strip()
        if _BOILERPLATE_LINE.match(line):
            continue
        lines.append(line)
    text = "\n".join(lines)
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


def normalize_query(text: str) -> str:
    """A user question as the retrievers should see it: no URLs, no invisible runs, no greeting."""
    text = clean_text(_URL.sub(" ", text or ""))
    text = " ".join(text.split())
    stripped = text
    for _ in range(3):  # "Здравствуйте! Добрый день," → both go
        new = _GREETING.sub("", stripped)
        if new == stripped:
            break
        stripped = new
    return stripped.strip() or text


_FOLD_LOOKALIKES = str.maketrans("aceopxyk", "асеорхук")


def passage_key(*parts: str) -> str:
    """What two passages share when a reader would call them the same text: case, ё, punctuation,
    spacing and look-alike Latin letters («c YouTube» / «с YouTube») do not count."""
    text = " ".join(parts).lower().replace("ё", "е")
    return " ".join(re.sub(r"[\W_]+", " ", text).translate(_FOLD_LOOKALIKES).split())


def cache_key_text(text: str) -> str:
    """Aggressive normalisation for exact-match caching: case, ё, punctuation and spaces."""
    text = normalize_query(text).lower().replace("ё", "е")
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())
