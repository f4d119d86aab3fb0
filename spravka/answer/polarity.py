"""Claims that say the opposite of their source: «можно» where the source says «нельзя».

The literal fact check (:func:`spravka.answer.check.unsupported_facts`) cannot see a flipped
meaning: no new number or name appears. A small model does flip one now and then, and in
support that is the worst answer of all («Да, в приложении можно вести трансляции» when the
source says there is no such feature). This check is literal too, and it stays on the safe
side:

* each sentence of the text is compared with the source sentences that say nearly the same
  thing (content lemmas: at least 3 in the sentence, 75% of them in the source sentence, and
  half of the source sentence's in the text; a sentence with a bounded number needs only one
  content word, and is compared with the source sentences that bound the same number);
* a sentence is flagged only when every such source sentence has the other polarity. Polarity
  is the presence of a negation: «не», «нет», «ни», «без», «нельзя», «невозможно»,
  «отсутствует», «запрещено» (and their English kin), or a word with the prefix «не» whose base
  the other sentence has («недоступно» against «доступно»);
* what does not negate a claim is left out: a reply particle («Нет, …», «Да, …»), a condition
  («если вы не согласны, …») and a bound («не более 10 МБ», «не может превышать 24 часов»);
* a bound turned round is a flip too: «более 10 МБ» where the source says «не более 10 МБ», or
  «не менее 2 видео» against «менее 2 видео». A bound is a comparative word with the number
  that follows it (an upper one: «не более», «менее», «максимум», «не превышать», "at most"; a
  lower one: «более», «не менее», «минимум», «превышать», "at least"), and two sentences
  disagree on it when one bounds a number from above and the other from below. A negation and a
  turned bound in the same sentence cancel out («более 10 МБ нельзя» = «не более 10 МБ»).

A paraphrase the source does not contain sentence by sentence is not judged at all, so this
misses many flips; what it flags is nearly always a real contradiction. Questions (sentences
ending in «?») are neither claims nor sources.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from spravka.core.text.lemmas import lemma, words
from spravka.core.text.sentences import split_sentences
from spravka.core.text.stopwords import ALL as STOP_WORDS

_NEGATION = frozenset({"не", "нет", "ни", "без", "no", "not", "never", "cannot", "without", "t"})  # "can't" → can, t
#: a negative word that is a positive one negated: the positive one is what the sentence is about
_NEGATED = {
    "нельзя": "можно", "невозможно": "возможно", "невозможный": "возможный", "отсутствовать": "",
    "запрещать": "разрешать", "запрещено": "разрешено", "запретить": "разрешить",
}
#: «не более 10 МБ» is a bound, not a negation
_BOUND = frozenset({
    "более", "менее", "больше", "меньше", "позднее", "позже", "раньше", "ранее", "дольше", "чаще", "реже",
    "выше", "ниже", "старше", "младше", "свыше", "more", "less", "later", "earlier", "than",
})
#: «не может превышать 24 часов» is a bound too
_EXCEED = frozenset({"превышать", "превысить", "exceed"})
#: the direction of a bound: ``+1`` bounds from below («более 10»), ``-1`` from above («менее 10»);
#: a «не» before it turns it round
_DIRECTION = {
    "более": 1, "больше": 1, "свыше": 1, "выше": 1, "дольше": 1, "позднее": 1, "позже": 1, "старше": 1,
    "превышать": 1, "превысить": 1, "минимум": 1, "more": 1, "over": 1, "exceed": 1, "least": 1,
    "менее": -1, "меньше": -1, "ниже": -1, "раньше": -1, "ранее": -1, "младше": -1, "максимум": -1,
    "less": -1, "fewer": -1, "under": -1, "most": -1,
}
#: numbers written as words, by lemma («не менее двух видео»)
_NUMERALS = {
    "один": "1", "два": "2", "три": "3", "четыре": "4", "пять": "5", "шесть": "6", "семь": "7",
    "восемь": "8", "девять": "9", "десять": "10", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "ten": "10",
}
_MODAL = frozenset({"может", "могут", "должен", "должна", "должно", "должны", "can", "may", "must", "should"})
_PARTICLE = re.compile(r"^\s*(?:да|нет|верно|конечно|yes|no)\b\s*[,.!:—–-]+\s*", re.IGNORECASE)
_CONDITION = re.compile(r"\b(?:если|когда|if|when|unless)\b[^,;]*[,;]", re.IGNORECASE)
_PREFIXED = "не:"

MIN_CONTENT = 3
MIN_OVERLAP = 0.75
MIN_BACK = 0.5


@dataclass(frozen=True, slots=True)
class Claim:
    text: str
    negated: bool
    #: content lemmas; a word with the prefix «не» also adds ``не:<base lemma>``
    content: frozenset[str]
    #: (number, direction) of each bound: ``("10", -1)`` for «не более 10 МБ»
    bounds: frozenset[tuple[str, int]] = frozenset()


def claim(sentence: str) -> Claim:
    body = _PARTICLE.sub("", sentence)
    main = words(_CONDITION.sub(" ", body))
    negated = any((w in _NEGATION and not _bound(main[i + 1:i + 3])) or lemma(w) in _NEGATED for i, w in enumerate(main))
    content: set[str] = set()
    for w in words(body):
        if w in _NEGATION:
            continue
        lm = _NEGATED.get(lemma(w), lemma(w))
        if lm and lm not in STOP_WORDS and len(lm) >= 3 and lm not in _BOUND:
            content.add(lm)
            if w.startswith("не") and len(w) >= 6:
                content.add(_PREFIXED + lemma(w[2:]))
    return Claim(sentence, negated, frozenset(content), _bounds(main))


def _bounds(ws: list[str]) -> frozenset[tuple[str, int]]:
    """The bounds of a sentence: a comparative word (after an optional «не» and modal) and the
    number within the next two words («не более 10 МБ», «не может превышать 24 часов»)."""
    out: set[tuple[str, int]] = set()
    for i, w in enumerate(ws):
        direction = _DIRECTION.get(lemma(w))
        if direction is None:
            continue
        j = i - 1
        if j >= 0 and ws[j] in _MODAL:
            j -= 1
        if j >= 0 and ws[j] in ("не", "no", "not"):
            direction = -direction
        for nxt in ws[i + 1:i + 3]:
            if nxt == "than":
                continue
            number = nxt if nxt.isdigit() else _NUMERALS.get(lemma(nxt))
            if number is not None:
                out.add((number.lstrip("0") or "0", direction))
            break
    return frozenset(out)


def _bound_turned(a: Claim, b: Claim) -> bool:
    """Whether one sentence bounds a number from above and the other from below."""
    return any((n, -d) in b.bounds for n, d in a.bounds)


def _bound(after: list[str]) -> bool:
    """Whether the words after a «не» make it a bound («не более», «не может превышать»)."""
    if after and after[0] in _MODAL:
        after = after[1:]
    return bool(after) and (after[0] in _BOUND or lemma(after[0]) in _EXCEED)


def claims(text: str) -> list[Claim]:
    """The statements of ``text``, one per sentence or «; »-joined clause (questions left out)."""
    out = []
    for a, b in split_sentences(text, clauses=True):
        s = text[a:b].strip()
        if s and not s.endswith("?"):
            out.append(claim(s))
    return out


def _compare(a: Claim, b: Claim) -> tuple[float, float, bool]:
    """How much of ``a`` ``b`` says, how much of ``b`` ``a`` says, and whether they disagree."""
    ca, cb = set(a.content), set(b.content)
    neg_a, neg_b = a.negated, b.negated
    for mine, other, side in ((ca, cb, 0), (cb, ca, 1)):
        for key in [k for k in mine if k.startswith(_PREFIXED)]:
            mine.discard(key)
            base = key[len(_PREFIXED):]
            if base in other:  # «недоступно» here, «доступно» there: the same word, negated
                mine.add(base)
                if side == 0:
                    neg_a = not neg_a
                else:
                    neg_b = not neg_b
    shared = len(ca & cb)
    # a negation and a turned bound cancel out: «более 10 МБ нельзя» says «не более 10 МБ»
    return shared / max(1, len(ca)), shared / max(1, len(cb)), (neg_a != neg_b) != _bound_turned(a, b)


def reversed_claims(text: str, sources: str | Iterable[str]) -> list[str]:
    """The sentences of ``text`` that say the opposite of every source sentence saying nearly the
    same thing (see the module docstring)."""
    source = sources if isinstance(sources, str) else "\n".join(sources)
    known = claims(source)
    out: list[str] = []
    for c in claims(text):
        size = len([k for k in c.content if not k.startswith(_PREFIXED)])
        if size >= MIN_CONTENT:
            against = known
        elif c.bounds and size:
            # «Вес не более 10 МБ.» has one content word, but the bounded number anchors it: it
            # is compared with the source sentences that bound the same number
            numbers = {n for n, _ in c.bounds}
            against = [s for s in known if numbers & {n for n, _ in s.bounds}]
        else:
            continue
        close = [flip for fwd, back, flip in (_compare(c, s) for s in against) if fwd >= MIN_OVERLAP and back >= MIN_BACK]
        if close and all(close):
            out.append(c.text)
    return out
