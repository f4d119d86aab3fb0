"""Lexical analysis with Russian morphology.

Cyrillic words become pymorphy3 lemmas («монетизацию» → «монетизация»), Latin words become
Snowball English stems, numbers stay as they are. Stop words are dropped after lemmatisation.
The same analyzer runs at index and at query time, so the two always agree.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from spravka.core.text.stopwords import ALL as STOP_WORDS

_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_lock = threading.Lock()
_morph = None
_stemmer = None


def _analyzers():
    global _morph, _stemmer
    if _morph is None:
        with _lock:
            if _morph is None:
                import pymorphy3
                import Stemmer

                _stemmer = Stemmer.Stemmer("english")
                _morph = pymorphy3.MorphAnalyzer()
    return _morph, _stemmer


@lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    """Lemma of one lower-cased word (cached: a corpus has far fewer distinct words than tokens)."""
    morph, stemmer = _analyzers()
    if _CYRILLIC.search(word):
        return morph.parse(word)[0].normal_form.replace("ё", "е")
    if word.isdigit():
        return word
    return stemmer.stemWord(word)


def words(text: str) -> list[str]:
    """Lower-cased word tokens; hyphenated words are kept whole and also split."""
    out: list[str] = []
    for m in _WORD.finditer(text.lower().replace("ё", "е")):
        w = m.group(0)
        if "-" in w or "'" in w:
            parts = [p for p in re.split(r"[-']", w) if p]
            out.extend(parts)
        else:
            out.append(w)
    return out


def analyze(text: str) -> list[str]:
    """Text → lexical terms (lemmas without stop words)."""
    terms = []
    for w in words(text):
        if w in STOP_WORDS:
            continue
        lem = lemma(w)
        if lem in STOP_WORDS or not lem:
            continue
        terms.append(lem)
    return terms
