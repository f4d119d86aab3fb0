"""The question's content words and how rare each is in what the asker may read.

Both the confidence gate and the extractive sentence scorer weigh question words by rarity: a
question about «постамат» is not answered by a chunk that shares only «заказ» and «храниться».
Rarity comes from the index itself (one lexical query per word, with the caller's filter and
access groups), so a word that exists only in documents the asker cannot read counts as absent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from spravka.core.filters import Filter
from spravka.core.text.lemmas import analyze
from spravka.store.base import SearchIndex

#: lemmas that shape a question but carry no topic («сколько стоит», «можно ли», "how much");
#: without them a chunk matching only «сколько» would look like half an answer
_QUESTION_WORDS = (
    "сколько можно нужно нужный надо хотеть сделать делать почему куда откуда зачем стоить ваш мочь "
    "получиться теперь просто вообще какой-то ли сказать знать интересовать вопрос скок скока чтоб "
    "much mani long take can get need want use ll m s ve d doe tell know pleas"
)
QUESTION_WORDS = frozenset(_QUESTION_WORDS.split())
#: lexical candidates counted per word; a word in more chunks than this is common anyway
DF_CAP = 256


@dataclass(slots=True)
class QuestionTerms:
    """Content lemmas of a question (first occurrence order) with document frequencies."""

    terms: list[str]
    df: dict[str, int] = field(default_factory=dict)
    #: chunks the asker may read in the collection
    n: int = 0

    def idf(self, term: str) -> float:
        return math.log((self.n + 1) / (self.df.get(term, 0) + 0.5))

    @property
    def total_weight(self) -> float:
        return sum(self.idf(t) for t in self.terms)

    def coverage(self, lemmas: Iterable[str] | set[str]) -> float:
        """IDF-weighted share of the question's content words found in ``lemmas``."""
        present = lemmas if isinstance(lemmas, set) else set(lemmas)
        total = self.total_weight
        if total <= 0:
            return 0.0
        return sum(self.idf(t) for t in self.terms if t in present) / total

    @property
    def oov(self) -> float:
        """Share of content words that no readable chunk contains (typos excepted: the lexical
        index matches words one edit away)."""
        if not self.terms:
            return 0.0
        return sum(1 for t in self.terms if self.df.get(t, 0) == 0) / len(self.terms)

    @property
    def missing(self) -> list[str]:
        return [t for t in self.terms if self.df.get(t, 0) == 0]


def content_lemmas(text: str) -> list[str]:
    return [t for t in dict.fromkeys(analyze(text)) if t not in QUESTION_WORDS]


def question_terms(question: str, index: SearchIndex, collection: str, flt: Filter | None) -> QuestionTerms:
    """One lexical query per content word (a few milliseconds for a typical question)."""
    flt = flt or Filter()
    terms = content_lemmas(question)
    df: dict[str, int] = {}
    for t in terms:
        df[t] = len(index.search_lexical(collection, [t], DF_CAP, flt, 1.0, True).ids)
    return QuestionTerms(terms, df, index.count(collection, flt))
