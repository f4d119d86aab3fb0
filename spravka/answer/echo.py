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

A sentence the answer already said goes too (the 1.5B model wrote «[1] Переплата будет 6% от
суммы.» three times, once per source). A sentence that restates the question as a statement
(«Заказ можно отменить.») stays: it is a short «yes». :func:`has_statement` tells whether anything but citation markers and questions is
left; the post-check fails an answer without one.
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
    """``text`` without its echo sentences (see the module docstring), and how many went.

    A citation marker in front of an echo stays: it belongs to what follows («[1] Не пришёл чек?
    Проверьте папку «Спам».» → «[1] Проверьте папку «Спам».»). A line left with such markers
    alone gives them to the next line of text, or at the end to the last one, so «[1] Title\\nText»
    becomes «[1] Text»; of several such lines in a row the nearest counts. A marker after an echo
    («Сколько стоит доставка? [1]») cited the echo and goes with it."""
    keys = {passage_key(label) for label in labels}
    keys |= {passage_key(question)} | {passage_key(question[a:b]) for a, b in split_sentences(question)}
    keys.discard("")
    known = set(content_lemmas(question))
    for label in labels:
        known.update(content_lemmas(label))
    removed = 0
    out: list[str] = []
    pending = ""
    said: set[str] = set()
    for line in text.split("\n"):
        line, n, carry = _strip_line(line, known, keys, said)
        removed += n
        if n and not _words(line):
            pending = carry or pending
            continue
        if pending and line.strip():
            marker = _MARKER.match(line)
            cut = marker.end() if marker else len(line) - len(line.lstrip())
            if not _CITATION.match(line[cut:]):
                line = f"{line[:cut]}{pending} {line[cut:]}"
            pending = ""
        out.append(line)
    if not removed:
        return text, 0
    if pending:
        last = next((i for i in range(len(out) - 1, -1, -1) if out[i].strip()), None)
        if last is not None:
            out[last] = f"{out[last].rstrip()} {pending}"
    cleaned = "\n".join(out)
    cleaned = re.sub(r"(\]|^)[ \t]*[—–][ \t]+", r"\1 ", cleaned, flags=re.MULTILINE)  # «[1] — Нет, …»
    cleaned = re.sub(r"[ \t]+", " ", cleaned)
    cleaned = re.sub(r" *\n *", "\n", cleaned)
    return re.sub(r"\n{3,}", "\n\n", cleaned).strip(), removed


def _words(text: str) -> str:
    """``text`` without citation markers, list markers and punctuation around them."""
    return _MARKER.sub("", _CITATION.sub(" ", text)).strip(" .,;:")


def _leading_markers(sentence: str) -> str:
    """The citation markers in front of a sentence's first word («[1]. Сколько…» → «[1]»)."""
    m = re.match(r"^\s*(?:\d{1,2}[.)]\s*)?((?:\[[^\]]*\][\s.:]*)+)", sentence)
    return " ".join(_CITATION.findall(m.group(1))) if m else ""


def _strip_line(line: str, known: set[str], keys: set[str], said: set[str]) -> tuple[str, int, str]:
    """One line without its echo sentences and without sentences said before in the answer
    (``said`` collects the kept ones); also the citation markers that belong to what follows.
    A whole line that is a title goes at once: a split inside «… — 2. Кому доступны форматы»
    would hide it."""
    core = _words(line)
    if core and passage_key(core) in keys:
        markers = _leading_markers(line)
        return markers, 1, markers
    removed = 0
    carry = ""
    out: list[str] = []
    repeat_markers: list[int] = []  # positions in ``out`` of the markers of repeated sentences
    pos = 0
    for a, b in split_sentences(line):
        sentence = line[a:b]
        core = _words(sentence)
        key = passage_key(core)
        out.append(line[pos:a])
        if core and _echo(core, known, keys):
            carry = _leading_markers(sentence)
            out.append(carry)
            removed += 1
        elif key and key in said:  # said again, citing another source: once is enough
            repeat_markers.append(len(out))
            out.append(_leading_markers(sentence))  # they cite what follows, if anything does
            removed += 1
        else:
            if key:
                said.add(key)
            out.append(sentence)
        pos = b
    out.append(line[pos:])
    if not removed:
        return line, 0, ""
    for i in reversed(repeat_markers):  # a repeat's markers with no text after them cite nothing
        if _words("".join(out[i + 1:])):
            break
        out[i] = ""
    return "".join(out), removed, carry


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
