"""Sentence-aware chunking with a token budget, overlap, offsets and section boundaries."""

from __future__ import annotations

import pytest

from spravka.core.types import Document, Section
from spravka.ingest.chunker import Chunker
from spravka.models.bundled import E5Embedder


@pytest.fixture(scope="module")
def count():
    return E5Embedder().count_tokens


def policy(n: int) -> str:
    sentences = [
        f"Согласно пункту {i} товар надлежащего качества можно вернуть в течение {i + 10} календарных дней при наличии чека."
        for i in range(n)
    ]
    return " ".join(sentences)


def test_chunks_stay_within_budget_and_align_to_sentences(count):
    ch = Chunker(count, max_tokens=120, overlap_sentences=1)
    doc = Document(id="d", title="Возвраты", sections=[Section(text=policy(30), heading="Сроки")])
    chunks = ch.chunk(doc)
    assert len(chunks) > 3
    for c in chunks:
        assert c.tokens <= 120
        assert 40 <= count(c.text) <= 125  # about 100-130 tokens, no stubs
        assert c.text == doc.text[c.start:c.end]
        assert c.text.startswith("Согласно") and c.text.endswith("чека.")
        assert c.heading == "Сроки" and c.title == "Возвраты"
    assert [c.ord for c in chunks] == list(range(len(chunks)))
    # neighbours overlap by one short sentence, and together they cover the whole text
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end
    assert chunks[0].start == 0 and chunks[-1].end == len(doc.text)


def test_no_overlap_when_disabled(count):
    chunks = Chunker(count, max_tokens=60, overlap_sentences=0).chunk(
        Document(id="d", title="", sections=[Section(text=policy(12))]))
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start >= a.end


def test_chunks_never_cross_sections_and_keep_pages(count):
    doc = Document(id="d", title="T", sections=[
        Section(text="Первый раздел короткий.", heading="A", page=1),
        Section(text="Второй раздел тоже короткий.", heading="B", page=2),
    ])
    chunks = Chunker(count, max_tokens=120).chunk(doc)
    assert [(c.heading, c.page, c.text) for c in chunks] == [
        ("A", 1, "Первый раздел короткий."), ("B", 2, "Второй раздел тоже короткий.")]
    assert doc.text[chunks[1].start:chunks[1].end] == chunks[1].text


def test_an_overlong_sentence_is_split_at_clauses_then_words(count):
    long_sentence = ", ".join(f"пункт номер {i} про доставку крупногабаритной техники" for i in range(60)) + "."
    chunks = Chunker(count, max_tokens=50).chunk(Document(id="d", title="", sections=[Section(text=long_sentence)]))
    assert len(chunks) > 5
    assert all(c.tokens <= 63 for c in chunks)  # the budget, or a folded-in stub of at most a quarter more
    assert "".join(c.text for c in chunks).replace(" ", "") == long_sentence.replace(" ", "")


def test_embed_text_gives_small_chunks_their_context():
    from spravka.core.types import Chunk

    c = Chunk(doc_id="d", ord=0, text="Срок — 30 дней.", title="Правила возврата", heading="Сроки")
    assert c.embed_text() == "Правила возврата\nСроки\nСрок — 30 дней."
    assert Chunk(doc_id="d", ord=0, text="Как вернуть? Так.", title="Как вернуть?").embed_text() == "Как вернуть? Так."


def test_a_table_row_is_never_split_between_chunks(count):
    # A CSV table as the loader renders it: one self-describing line per row. Each row fits the
    # budget, so each chunk holds whole rows: a zone is never separated from its price.
    rows = [f"Зона: {i}; Территория: Регион номер {i} и соседние области; Курьер до 10 кг (₽): {190 + 100 * i}; "
            f"Пункт выдачи (₽): {50 * i}; Срок доставки (рабочих дней): {i}–{i + 2}." for i in range(1, 9)]
    doc = Document(id="prices.csv", title="Тарифы", sections=[Section(text="\n".join(rows))])
    chunks = Chunker(count, max_tokens=120, overlap_sentences=1).chunk(doc)
    assert len(chunks) > 1
    for c in chunks:
        assert all(line in rows for line in c.text.split("\n")), c.text
