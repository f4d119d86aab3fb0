"""Extractive answers: the best one to three sentences of the top chunks, each with its source.

The honest MVP and the fallback of the generative mode: nothing is invented, a widget simply
quotes the FAQ. Sentences are scored by the IDF-weighted share of the question's content words
they contain, plus the retrieval rank of their chunk (the fused search is usually right about the
document, the sentence score picks the line inside it), plus the cosine of question and sentence
embeddings (``answer.sentence_embeddings``, on by default: about 0.1 s per new question on 2
cores; vectors are cached by hash).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from spravka.answer.terms import QuestionTerms
from spravka.core.text.lemmas import analyze
from spravka.core.text.sentences import split_sentences
from spravka.core.types import Citation, Hit
from spravka.models.embedder import CachedEmbedder

#: weight of the chunk's retrieval rank against the sentence's word coverage; small, because the
#: sentence score alone picked the expected document more often than the search's top hit did
#: (sample golden set: 82% vs 77%, measured with bench/answers.py)
RANK_WEIGHT = 0.05
EMBED_WEIGHT = 0.5
#: two sentences sharing this share of their lemmas (Jaccard) say the same thing: the policy and
#: the FAQ both state «Заказ хранится в пункте выдачи 5 календарных дней…», and an answer of two
#: sentences should not spend its second one repeating the first
NEAR_DUPLICATE = 0.6
_MIN_CHARS = 20
_BULLET = re.compile(r"^\s*(?:[-–—•*]|\d+[.)])\s*")


@dataclass(slots=True)
class Sentence:
    text: str
    hit: Hit
    #: character offsets of the sentence within the chunk text
    start: int
    end: int
    position: int
    score: float = 0.0
    #: a table row's header row (``Грейд | Уровень | Вилка оклада``): scored with the row, shown before it
    header: str | None = None

    @property
    def scored_text(self) -> str:
        return f"{self.header}\n{self.text}" if self.header else self.text


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence spans, with lines that a PDF wrapped mid-sentence joined back together."""
    spans = split_sentences(text)
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out:
            pa, pb = out[-1]
            prev, cur = text[pa:pb].rstrip(), text[a:b].lstrip()
            if prev and cur and prev[-1] not in ".!?:;|" and (cur[0].islower() or cur[0] in "(«,"):
                out[-1] = (pa, b)
                continue
        out.append((a, b))
    return out


def candidate_sentences(
    hits: Sequence[Hit], top_chunks: int = 3, doc_text: Callable[[str], str | None] | None = None
) -> list[Sentence]:
    """Sentences of the best chunks, without headings and fragments too short to answer.

    ``doc_text(doc_id)`` lets a table row find its header row when the chunk starts mid-table.
    """
    out: list[Sentence] = []
    for hit in hits[:top_chunks]:
        skip = {hit.title.strip().lower(), hit.heading.strip().lower()}
        doc = doc_text(hit.doc_id) if doc_text else None
        if not doc or doc[hit.start : hit.end] != hit.text:
            doc, offset = hit.text, 0
        else:
            offset = hit.start
        spans = sentence_spans(hit.text)
        for pos, (a, b) in enumerate(spans):
            text = " ".join(hit.text[a:b].split())
            if len(text) < _MIN_CHARS or text.lower().rstrip(":.") in skip or len(_BULLET.sub("", text).split()) < 3:
                continue
            if _heading_line(hit.text, a, b, text):
                continue
            if text.endswith(":") and " | " not in text:
                # «Не подлежат возврату, если товар надлежащего качества:» says nothing without its
                # list: quote the items that follow, or leave it out when the chunk ends first
                items = _list_items(hit.text, spans[pos + 1 :])
                if not items:
                    continue
                b = items[-1][1]
                text = " ".join([text, *(_BULLET.sub("", " ".join(hit.text[x:y].split())) for x, y in items)])
            header = table_header(doc, offset + a) if " | " in text else None
            if header == "":  # the header row itself
                continue
            if header is None and pos and _DEPENDENT.match(text):
                # «Исключение — сотрудники, принятые на удалённую работу» needs the sentence it
                # is the exception to: quote it with the one before (not a heading or a table row)
                pa, pb = spans[pos - 1]
                before = " ".join(hit.text[pa:pb].split())
                if " | " not in before and not _heading_line(hit.text, pa, pb, before):
                    a, text = pa, f"{before} {text}"
            out.append(Sentence(text, hit, a, b, pos, header=header))
    return out


#: sentence openers that lean on the sentence before («Исключение — …», «Это …», «However, …»)
_DEPENDENT = re.compile(
    r"^(?:исключение|исключения|это|этот|эта|эти|такой|такая|такие|также|кроме того|при этом|однако|но|"
    r"поэтому|тогда|там|он|она|оно|они|его|её|ее|их|в этом случае|в таком случае|иначе|остальные|"
    r"this|these|that|those|it|they|however|also|otherwise|in this case|such)\b",
    re.IGNORECASE,
)


#: a list quoted after its «…:» introduction: at most this many items and characters
LIST_ITEMS = 4
LIST_CHARS = 400


def _list_items(text: str, following: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The bullet items right after a «…:» line, as many as :data:`LIST_ITEMS` / :data:`LIST_CHARS` allow."""
    items: list[tuple[int, int]] = []
    size = 0
    for a, b in following:
        if not _BULLET.match(text[a:b]) or len(items) >= LIST_ITEMS or size + (b - a) > LIST_CHARS:
            break
        items.append((a, b))
        size += b - a
    return items


def _heading_line(text: str, a: int, b: int, sentence: str) -> bool:
    """A line of its own with no closing punctuation and a few words: a heading a PDF or a plain
    text file kept inside the text («4. Оформление отпуска», «Продолжительность отпуска»), not
    something to quote as an answer. Table rows are not headings."""
    whole_line = (a == 0 or text[a - 1] == "\n") and (b == len(text) or text[b] == "\n")
    return (whole_line and " | " not in sentence and sentence[-1] not in ".!?…:;»\")"
            and len(_BULLET.sub("", sentence).split()) <= 6)


def table_header(text: str, pos: int) -> str:
    """The header row of the ``a | b | c`` table whose row starts at ``pos`` in ``text``: the
    first line of the block of table lines above it ("" when the row is the header itself)."""
    lines_before = text[:pos].split("\n")[:-1]
    top: str | None = None
    for line in reversed(lines_before):
        if " | " not in line:
            break
        top = line
    if top is None:
        return ""
    return " ".join(top.split())


def table_row_text(header: str, row: str) -> str:
    """A table row read with its header: «Срок: 4, 6 или 12 месяцев» for a two-column row, and
    «G5 — Уровень: ведущие специалисты; Вилка оклада: 120 000 – 170 000» for a wider one (the
    first cell names the row). Rows whose cells do not match the header keep both lines as they are."""
    names = [c.strip() for c in header.strip().strip("|").split(" | ")]
    cells = [c.strip() for c in row.strip().strip("|").split(" | ")]
    if len(names) != len(cells) or len(cells) < 2 or not all(cells):
        return f"{header}: {row}"
    if len(cells) == 2:
        return f"{cells[0]}: {cells[1]}"
    rest = [c.rstrip(".") for c in cells[1:-1]] + cells[-1:]  # not «…через 2 рабочих дня.; Где: …»
    return f"{cells[0]} — " + "; ".join(f"{h}: {c}" if h else c for h, c in zip(names[1:], rest, strict=True))


def score_sentences(
    question: str,
    sentences: list[Sentence],
    terms: QuestionTerms,
    embedder: CachedEmbedder | None = None,
) -> list[Sentence]:
    """Scores in place; returns the sentences best first."""
    if not sentences:
        return []
    top_score = max(s.hit.score for s in sentences) or 1.0
    for s in sentences:
        prior = 1.0 / s.hit.rank if s.hit.rank else 0.0
        s.score = terms.coverage(set(analyze(s.scored_text or s.text))) + RANK_WEIGHT * prior
        if top_score > 0:
            s.score += 0.1 * max(0.0, s.hit.score / top_score)
    if embedder is not None:
        q = embedder.embed_query(question)
        vecs = embedder.embed_passages([s.text for s in sentences])
        cos = vecs @ q
        # e5 cosines live in a narrow band (about 0.75-0.92): spread them before mixing
        spread = (cos - cos.min()) / (float(np.ptp(cos)) or 1.0)
        for s, c in zip(sentences, spread, strict=True):
            s.score += EMBED_WEIGHT * float(c)
    return sorted(sentences, key=lambda s: s.score, reverse=True)


def select(ranked: list[Sentence], max_sentences: int, ratio: float = 0.75) -> list[Sentence]:
    """The best sentence, plus close runners-up (the continuation of a rule often follows it)."""
    if not ranked:
        return []
    best = ranked[0]
    chosen = [best]
    lemmas = {id(best): set(analyze(best.text))}
    for s in ranked[1:]:
        if len(chosen) >= max_sentences:
            break
        if s.score < ratio * best.score:
            continue
        # Chunks overlap by a sentence, and a PDF chunk may end mid-sentence: skip repeats, and
        # the same statement made by two documents.
        if any(s.text in c.text or c.text in s.text for c in chosen):
            continue
        own = lemmas[id(s)] = set(analyze(s.text))
        if any(_jaccard(own, lemmas[id(c)]) >= NEAR_DUPLICATE for c in chosen):
            continue
        chosen.append(s)
    # Read in source order: grouped by chunk in the order of their best sentence.
    chunk_order = {c.hit.chunk_id: i for i, c in reversed(list(enumerate(chosen)))}
    return sorted(chosen, key=lambda s: (chunk_order[s.hit.chunk_id], s.position))


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def extractive_answer(
    question: str,
    hits: Sequence[Hit],
    terms: QuestionTerms,
    *,
    max_sentences: int = 2,
    embedder: CachedEmbedder | None = None,
    doc_text: Callable[[str], str | None] | None = None,
) -> tuple[str, list[Citation]]:
    """``("sentence [1] sentence [2]", citations)``; empty when no usable sentence."""
    ranked = score_sentences(question, candidate_sentences(hits, doc_text=doc_text), terms, embedder)
    chosen = select(ranked, max_sentences)
    numbers: dict[str, int] = {}
    citations: list[Citation] = []
    parts: list[str] = []
    for s in chosen:
        n = numbers.get(s.hit.chunk_id)
        if n is None:
            n = numbers[s.hit.chunk_id] = len(numbers) + 1
            citations.append(citation_for(n, s.hit, s.text, s.start, s.end))
        else:
            citations[n - 1].snippet += " " + s.text
        body = _BULLET.sub("", s.text).rstrip()
        parts.append(f"{table_row_text(s.header, body) if s.header else body} [{n}]")
    return " ".join(parts), citations


def citation_for(
    n: int, hit: Hit, snippet: str, start: int | None = None, end: int | None = None
) -> Citation:
    """A citation of ``hit``; ``start``/``end`` are offsets in the chunk, made document-absolute."""
    a = hit.start + (start or 0)
    b = hit.start + end if end is not None else hit.end
    return Citation(
        n=n,
        doc_id=hit.doc_id,
        title=hit.title,
        snippet=snippet,
        chunk_id=hit.chunk_id,
        heading=hit.heading,
        page=hit.page,
        start=a,
        end=b,
        score=round(float(hit.score), 4),
    )
