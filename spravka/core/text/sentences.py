"""Sentence splitting: razdel for Russian (it also handles English well enough)."""

from __future__ import annotations

from razdel import sentenize


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Return ``(start, end)`` character spans of the sentences in ``text``.

    Line breaks that separate list items or headings are sentence boundaries too, even without a
    full stop: FAQ answers and policies are full of bullet lists.
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    for line in text.split("\n"):
        if line.strip():
            for s in sentenize(line):
                if s.text.strip():
                    spans.append((pos + s.start, pos + s.stop))
        pos += len(line) + 1
    return spans
