"""Sentence-aware chunking with a token budget.

Chunks never cross a section (a heading or a PDF page): a chunk under «Сроки возврата» should not
start talking about delivery. Inside a section, whole sentences are packed up to ``max_tokens``;
a short last sentence is repeated at the start of the next chunk (overlap) so a fact split over a
boundary is still found. Offsets point into :attr:`Document.text`, which lets the answer step
widen a hit to its neighbours (the parent window).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from spravka.core.text.sentences import split_sentences
from spravka.core.types import Chunk, Document

SECTION_SEP = "\n\n"
_SOFT_BREAK = re.compile(r"(?<=[;:,—–])\s+|\s+(?=[—–-]\s)")


class Chunker:
    def __init__(self, count_tokens: Callable[[str], int], max_tokens: int = 120, overlap_sentences: int = 1) -> None:
        self.count = count_tokens
        self.max_tokens = max_tokens
        self.overlap = overlap_sentences

    def _pieces(self, text: str, start: int, end: int) -> list[tuple[int, int, int]]:
        """Split one over-long sentence at clause boundaries, then at words."""
        pieces: list[tuple[int, int, int]] = []
        cur_s = start
        last_ok = None
        positions = [start + m.end() for m in _SOFT_BREAK.finditer(text[start:end])]
        positions += [start + m.end() for m in re.finditer(r"\s+", text[start:end])]
        positions = sorted(set(p for p in positions if start < p < end)) + [end]
        for p in positions:
            n = self.count(text[cur_s:p].strip())
            if n <= self.max_tokens:
                last_ok = p
                continue
            if last_ok is None:  # a single word longer than the budget: cut it anyway
                last_ok = p
            pieces.append((cur_s, last_ok, self.count(text[cur_s:last_ok])))
            cur_s, last_ok = last_ok, None
            if self.count(text[cur_s:p].strip()) <= self.max_tokens:
                last_ok = p
        if cur_s < end:
            pieces.append((cur_s, end, self.count(text[cur_s:end])))
        return [(s, e, n) for s, e, n in pieces if text[s:e].strip()]

    def sentences(self, text: str, offset: int) -> list[tuple[int, int, int]]:
        out: list[tuple[int, int, int]] = []
        for s, e in split_sentences(text):
            n = self.count(text[s:e])
            if n > self.max_tokens:
                out.extend((offset + a, offset + b, k) for a, b, k in self._pieces(text, s, e))
            else:
                out.append((offset + s, offset + e, n))
        return out

    def chunk(self, doc: Document) -> list[Chunk]:
        full = doc.text
        chunks: list[Chunk] = []
        offset = 0
        for section in doc.sections:
            if not section.text:
                continue
            sents = self.sentences(section.text, offset)
            for start, end, tokens in self._pack(sents):
                chunks.append(
                    Chunk(
                        doc_id=doc.id,
                        ord=len(chunks),
                        text=full[start:end],
                        title=doc.title,
                        heading=section.heading,
                        page=section.page,
                        start=start,
                        end=end,
                        tokens=tokens,
                    )
                )
            offset += len(section.text) + len(SECTION_SEP)
        return chunks

    def _pack(self, sents: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        groups: list[list[tuple[int, int, int]]] = []
        cur: list[tuple[int, int, int]] = []
        size = 0
        for sent in sents:
            n = sent[2]
            if cur and size + n > self.max_tokens:
                groups.append(cur)
                carry = cur[-self.overlap :] if self.overlap else []
                carry_tokens = sum(s[2] for s in carry)
                if carry and len(cur) > len(carry) and carry_tokens + n <= self.max_tokens and carry_tokens <= 0.3 * self.max_tokens:
                    cur, size = list(carry), carry_tokens
                else:
                    cur, size = [], 0
            cur.append(sent)
            size += n
        if cur:
            # A stub of a chunk reads badly and embeds worse: fold it into the previous one.
            if groups and size < 0.25 * self.max_tokens and not set(cur) <= set(groups[-1]):
                prev = groups[-1]
                merged = prev + [s for s in cur if s not in prev]
                if sum(s[2] for s in merged) <= 1.25 * self.max_tokens:
                    groups[-1] = merged
                    cur = []
            if cur and not (groups and set(cur) <= set(groups[-1])):
                groups.append(cur)
        return [(g[0][0], g[-1][1], sum(s[2] for s in g)) for g in groups]
