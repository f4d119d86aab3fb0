"""Lines of a generated answer that only repeat the question or a source's title.

Small models often open with the user's question («[1] Не пришёл чек после оплаты, где его
найти? Проверьте папку «Спам»…»), or list the sources' titles instead of answering
(«[1] Правила возврата товаров — Что нельзя вернуть\\n\\n[2] …»). The bench on the sample golden set
found such lines in 5 of 35 answers of the local 1.5B model and 18 of 55 of the 0.5B, and one
1.5B answer was nothing else: «[1] Сколько дней заказ хранится в постамате? [2] Сколько дней
заказ хранится в постамате?». The literal post-check passed it, since it invents nothing.

:func:`strip_echoes` removes those sentences and keeps their citation markers (a «[1]» in front
of an echoed question belongs to the answer that follows). A sentence is an echo when it

* ends with «?» and at least 75% of its content words are the question's or a source title's, or
* is, up to case and punctuation, a source's title, heading or «title — heading» line, or the
  question or one of its sentences copied as it is («Пришла микроволновка с вмятиной, а курьер
  уже уехал.»).

A sentence the answer already said goes too, and its citation markers are kept (the 1.5B model
wrote «[1] Переплата будет 6% от суммы.» three times, once per source). A sentence that restates
the question as a statement («Заказ можно отменить.») stays: it is a short «yes».
:func:`has_statement` tells whether anything but citation markers and questions is left; the
post-check fails an answer without one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from spravka.answer.terms import content_lemmas
from spravka.core.text.normalize import passage_key
from spravka.core.text.sentences import split_sentences

_CITATION = re.compile(r"\[\d+(?:\s*[,;–-]\s*\d+)*\]")
_MARKER = re.compile(r"^\s*(?:\d{1,2}[.)]|[-–—•*])\s*")
_SOURCE_HEAD = re.compile(r"^\s*\[\d+\]\s*")
#: share of an echoed question's content words found in the user's question or a title
ECHO_SHARE = 0.75


def source_labels(sources: Iterable[str]) -> list[str]:
    """The title lines of rendered sources (``[n] title — heading``), as title, heading and both."""
    out: list[str] = []
    for src in sources:
        head = _SOURCE_HEAD.sub("", src.strip().split("\n", 1)[0]).strip()
        if head:
            out.append(head)
            out.extend(p.strip() for p in head.split(" — ") if p.strip())
    return out


def strip_echoes(text: str, question: str, labels: Sequence[str]) -> tuple[str, int]:
    """``text`` without its echo sentences and repeats (see the module docstring), and how many
    sentences went.

    Citation markers are kept where they still mean something:

    * a marker in front of an echo belongs to what follows («[1] Не пришёл чек? Проверьте папку
      «Спам».» → «[1] Проверьте папку «Спам».»); a line left with such markers alone gives them to
      the next line of text (the nearest such line counts), so «[1] Title\\nText» → «[1] Text»;
    * a marker after an echo («Сколько стоит доставка? [1]») cited the echo and goes with it;
    * a repeat's markers stay in its line after the line's last kept sentence, or, in a line of
      its own, join the sentence it repeats: «X [1]» … «[3] X» → «X [1] [3]», since the model
      said both sources hold it.
    """
    keys = {passage_key(label) for label in labels}
    keys |= {passage_key(question)} | {passage_key(question[a:b]) for a, b in split_sentences(question)}
    keys.discard("")
    known = set(content_lemmas(question))
    for label in labels:
        known.update(content_lemmas(label))
    lines: list[list[str]] = []  # the kept text, line by line, in pieces
    said: dict[str, tuple[int, int]] = {}  # a kept sentence's key → where its piece is
    last: tuple[int, int] | None = None  # the last kept sentence
    removed = 0
    pending = ""
    for line in text.split("\n"):
        pieces: list[str] = []
        lines.append(pieces)
        core = _words(line)
        if core and passage_key(core) in keys:  # a whole title line (a split could hide it)
            pending = _leading_markers(line) or pending
            removed += 1
            continue
        pos = 0
        own: int | None = None  # this line's last kept sentence
        for a, b in _sentences(line):
            sentence = line[a:b]
            core = _words(sentence)
            key = passage_key(core)
            pieces.append(line[pos:a])
            pos = b
            if core and _echo(core, known, keys):
                pending = _leading_markers(sentence) or pending
                removed += 1
            elif key in said and content_lemmas(core):  # said again (a bare «Да.» may be), citing another source
                # its markers stay in its line when the line says something else («…денег. Это
                # указано в документе [2].»: after it; «[2] X. Y.»: in front of what follows),
                # else they join the sentence it repeats
                markers = _CITATION.findall(pending) + _CITATION.findall(sentence)  # «[2] Echo? X.»: [2] cited X
                pending = ""
                i, j = said[key]
                if own is not None:
                    i, j = len(lines) - 1, own
                elif _words(line[b:]):
                    lead = _leading_markers(sentence)
                    pending = lead or pending
                    markers = [m for m in markers if m not in lead.split()]
                for marker in markers:
                    if marker not in lines[i][j]:
                        lines[i][j] = _add_marker(lines[i][j], marker)
                removed += 1
            else:
                if pending and not _leading_markers(sentence):
                    cut = len(sentence) - len(_MARKER.sub("", sentence, count=1).lstrip())
                    sentence = f"{sentence[:cut]}{pending} {sentence[cut:]}"
                pending = ""
                last = (len(lines) - 1, len(pieces))
                own = len(pieces)
                if key:
                    said[key] = last
                pieces.append(sentence)
        pieces.append(line[pos:])
    if not removed:
        return text, 0
    if pending and last is not None:  # «Text\n[1] Title»: the title's marker cited the text
        i, j = last
        lines[i][j] = _add_marker(lines[i][j], pending)
    cleaned = "\n".join("".join(pieces) for pieces in lines)
    cleaned = re.sub(r"(\]|^)[ \t]*[—–][ \t]+", r"\1 ", cleaned, flags=re.MULTILINE)  # «[1] — Нет, …»
    cleaned = re.sub(r"[ \t]+", " ", cleaned)
    cleaned = re.sub(r" *\n *", "\n", cleaned)
    cleaned = re.sub(r"(?m)^(?:\d{1,2}[.)]|[-–—•*])?\s*[.,;:]?\s*$", "", cleaned)  # a list item left empty
    return re.sub(r"\n{3,}", "\n\n", cleaned).strip(), removed


def _sentences(line: str) -> list[tuple[int, int]]:
    """Sentence spans of a line, a span of citation markers alone joined to the sentence after it
    («[1]» then «Сколько…?») or, at the end of the line, to the one before («…?» then «[1]»)."""
    spans: list[tuple[int, int]] = []
    hold: int | None = None
    for a, b in split_sentences(line):
        if not _words(line[a:b]):
            if spans and hold is None and not any(_words(line[x:y]) for x, y in split_sentences(line[b:]) or []):
                spans[-1] = (spans[-1][0], b)  # trailing markers: the sentence before cited them
            elif hold is None:
                hold = a
            continue
        spans.append((hold if hold is not None else a, b))
        hold = None
    if hold is not None:
        spans.append((hold, len(line.rstrip())))
    return spans


def _add_marker(sentence: str, marker: str) -> str:
    """``sentence`` with one more citation marker at its end (after the markers that end it)."""
    stripped = sentence.rstrip()
    return f"{stripped} {marker}{sentence[len(stripped):]}"


def _words(text: str) -> str:
    """``text`` without citation markers, list markers and punctuation around them."""
    return _MARKER.sub("", _CITATION.sub(" ", text)).strip(" .,;:")


def _leading_markers(sentence: str) -> str:
    """The citation markers in front of a sentence's first word («[1]. Сколько…» → «[1]»)."""
    m = re.match(r"^\s*(?:\d{1,2}[.)]\s*)?((?:\[[^\]]*\][\s.:]*)+)", sentence)
    return " ".join(_CITATION.findall(m.group(1))) if m else ""


def _is_question(core: str) -> bool:
    return core.rstrip(" .»\"'").endswith("?")


def _echo(core: str, known: set[str], keys: set[str]) -> bool:
    if passage_key(core) in keys:
        return True
    if not _is_question(core):
        return False
    words = content_lemmas(core)
    return not words or sum(1 for w in words if w in known) / len(words) >= ECHO_SHARE


def has_statement(text: str) -> bool:
    """Whether ``text`` says anything: a sentence that is not a question, with a word or a number
    outside its citation markers («Да, можно. [1]» counts)."""
    for a, b in split_sentences(text):
        core = _words(text[a:b])
        if core and not _is_question(core) and re.search(r"\w", core):
            return True
    return False
