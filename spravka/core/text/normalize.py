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

_GREETING = re.compile(
    r"^\s*(?:здравствуйте|здраствуйте|добрый\s+(?:день|вечер|утро)|доброе\s+утро|доброго\s+(?:дня|вечера|времени\s+суток)|"
    r"приветствую|привет|hello|hi|good\s+(?:morning|afternoon|evening))\b[\s!.,)]*",
    re.IGNORECASE,
)


def clean_text(text: str, *, dehyphenate: bool = False) -> str:
    """Normalise Unicode, drop invisible characters and boilerplate lines, tidy whitespace."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", text)
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


def cache_key_text(text: str) -> str:
    """Aggressive normalisation for exact-match caching: case, ё, punctuation and spaces."""
    text = normalize_query(text).lower().replace("ё", "е")
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())
