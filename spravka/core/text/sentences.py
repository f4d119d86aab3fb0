"""Sentence splitting: razdel for Russian (it also handles English well enough)."""

from __future__ import annotations

from razdel import sentenize


def split_sentences(text: str, *, clauses: bool = False) -> list[tuple[int, int]]:
    """Return ``(start, end)`` character spans of the sentences in ``text``.

    Line breaks that separate list items or headings are sentence boundaries too, even without a
    full stop: FAQ answers and policies are full of bullet lists.

    A semicolon is not: razdel cuts «Зона: 1; Территория: Москва; Курьер (₽): 290.» into three
    when the next word is capitalised, which tore a table row (a CSV line) into its cells, so that
    a chunk could end between a zone and its price and an extractive answer quoted «Территория:
    Москва в пределах МКАД;» without the price. Such pieces are joined back, and a table row
    (``a | b | c``) is one sentence, unless ``clauses``:
    the meaning check (:mod:`spravka.answer.polarity`) compares statements clause by clause.
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    for line in text.split("\n"):
        if " | " in line and not clauses:
            # a table row as the HTML and DOCX loaders write it («10:00 | Получить пропуск. Он
            # будет готов через 2 дня. | 1-й этаж»): one unit, so a cell is not parted from its row
            lead = len(line) - len(line.lstrip())
            spans.append((pos + lead, pos + len(line.rstrip())))
        elif line.strip():
            first = len(spans)
            for s in sentenize(line):
                if not s.text.strip():
                    continue
                if not clauses and len(spans) > first and line[spans[-1][1] - pos - 1] == ";":
                    spans[-1] = (spans[-1][0], pos + s.stop)
                else:
                    spans.append((pos + s.start, pos + s.stop))
        pos += len(line) + 1
    return spans
