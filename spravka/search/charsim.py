"""Character n-gram similarity between a question and candidate titles.

Words in support questions are misspelt, glued together or inflected in ways a lemmatiser does
not know («просмотрынакрученны», «смартфорне»). Character 3-5-grams still overlap. Weights are
TF-IDF with the IDF taken over the candidate titles themselves, so the signal needs no index and
rewards the n-grams that tell the candidates apart.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_NON_WORD = re.compile(r"[\W_]+")


def char_grams(text: str, sizes: Sequence[int] = (3, 4, 5)) -> Counter[str]:
    grams: Counter[str] = Counter()
    for w in _NON_WORD.sub(" ", text.lower().replace("ё", "е")).split():
        w = f" {w} "
        for n in sizes:
            for i in range(len(w) - n + 1):
                grams[w[i : i + n]] += 1
    return grams


def _weigh(grams: Counter[str], idf: dict[str, float]) -> dict[str, float]:
    v = {g: (1 + math.log(c)) * idf.get(g, 0.0) for g, c in grams.items()}
    norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
    return {g: x / norm for g, x in v.items()}


def title_similarity(query: str, titles: Sequence[str]) -> list[float]:
    """Cosine of TF-IDF char n-gram vectors of ``query`` and each title (IDF over ``titles``)."""
    if not titles:
        return []
    uniq = list(dict.fromkeys(titles))
    grams = {t: char_grams(t) for t in uniq}
    df: Counter[str] = Counter()
    for g in grams.values():
        df.update(g.keys())
    n = len(uniq)
    idf = {g: math.log((n + 1) / (c + 1) + 1) for g, c in df.items()}
    q = _weigh(char_grams(query), {g: idf.get(g, math.log(n + 2)) for g in char_grams(query)})
    sims: dict[str, float] = {}
    for t in uniq:
        v = _weigh(grams[t], idf)
        sims[t] = sum(w * v.get(g, 0.0) for g, w in q.items())
    return [sims[t] for t in titles]
