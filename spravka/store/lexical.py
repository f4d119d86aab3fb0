"""Lexical helpers shared by every backend: typo-tolerant vocabularies, cached per generation."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence


class Vocabulary:
    """A collection's lexical vocabulary with a one-edit neighbourhood, for typo tolerance.

    Support questions are typed in a hurry («пренадлежат», «приложеиии»). A query term that the
    collection does not contain is expanded with the terms one edit away (SymSpell-style delete
    neighbourhoods: a deletion on both sides covers insertions, deletions and substitutions).
    """

    MIN_LEN = 5

    def __init__(self, terms: Iterable[str]) -> None:
        self.terms = set(terms)
        self._deletes: dict[str, list[str]] | None = None

    @staticmethod
    def _variants(word: str) -> set[str]:
        return {word[:i] + word[i + 1 :] for i in range(len(word))} | {word}

    def _index(self) -> dict[str, list[str]]:
        if self._deletes is None:
            idx: dict[str, list[str]] = {}
            for t in self.terms:
                if len(t) >= self.MIN_LEN and not t.isdigit():
                    for v in self._variants(t):
                        idx.setdefault(v, []).append(t)
            self._deletes = idx
        return self._deletes

    def expand(self, terms: Sequence[str]) -> list[str]:
        out: list[str] = []
        for t in terms:
            out.append(t)
            if t in self.terms or len(t) < self.MIN_LEN or t.isdigit():
                continue
            idx = self._index()
            near = {c for v in self._variants(t) for c in idx.get(v, ())}
            out.extend(sorted(near))
        return out


class VocabularyCache:
    """One vocabulary per collection, rebuilt only when the collection's generation moves on."""

    def __init__(self) -> None:
        self._items: dict[Hashable, tuple[int, Vocabulary]] = {}

    def get(self, key: Hashable, generation: int, load: Callable[[], Iterable[str]]) -> Vocabulary:
        cached = self._items.get(key)
        if cached is None or cached[0] != generation:
            cached = (generation, Vocabulary(load()))
            self._items[key] = cached
        return cached[1]

    def drop(self, key: Hashable) -> None:
        self._items.pop(key, None)
