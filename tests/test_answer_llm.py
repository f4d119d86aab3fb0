"""Generative answers with the REAL local model (Qwen2.5-Coder-0.5B through llama.cpp).

The 0.5B model is weak: many of its answers fail the post-check and are downgraded to the
extractive quote. What must hold whatever it writes: citations point at chunks retrieved for
that question, a dead server never hangs an answer, and the local server is started lazily and
stopped on close. Prompts are ~1k tokens on 2 cores, so the handful of questions is small.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from spravka.answer.check import check_answer
from spravka.answer.pipeline import StreamReset
from spravka.answer.rerank import LLMReranker
from spravka.app import Spravka
from spravka.core.errors import ModelUnavailableError
from spravka.core.filters import parse_filters
from spravka.core.settings import Settings
from spravka.core.types import Answer, AnswerStatus
from spravka.models.local import LocalModelServer

pytestmark = pytest.mark.llm

QUESTIONS = [
    ("Сколько дней заказ лежит в пункте выдачи и можно ли продлить?", None),
    ("Сколько длится испытательный срок у руководителя отдела?", ["employees"]),
    ("Will I have to pay customs duty if I order a blender to Minsk?", None),
]


def _app(kb_app: Spravka, base_url: str, timeout_s: float = 120, **answer: object) -> Spravka:
    return Spravka(
        Settings(
            home=kb_app.home,
            llm={"provider": "llamacpp", "base_url": base_url, "timeout_s": timeout_s},
            answer={"max_tokens": 160, **answer},
        )
    )


def test_generative_citations_point_at_retrieved_chunks(kb_app: Spravka, llm_server: LocalModelServer):
    app = _app(kb_app, llm_server.base_url)
    try:
        assert app.llm_available() and app.answerer.resolve_mode("auto") == "generative"
        answered = 0
        for question, groups in QUESTIONS:
            a = app.answer(question, flt=parse_filters(None, groups), mode="generative")
            if a.status is not AnswerStatus.ANSWERED:  # the model said the sources hold no answer
                assert "llm: the sources do not answer the question" in a.notes, (question, a.notes)
                continue
            answered += 1
            assert a.mode in ("generative", "extractive") and a.citations, (question, a.text)
            retrieved = {h.chunk_id for h in a.hits}
            assert all(c.chunk_id in retrieved for c in a.citations), (question, a.citations)
            assert a.tokens["prompt"] > 0 and a.tokens["completion"] > 0 and a.timings_ms["generate_ms"] > 0
            if a.mode == "generative":
                sources = {c.n: c for c in a.citations}
                assert all(f"[{n}]" in a.text for n in sources)
            else:  # downgraded: the note says why
                assert any("post-check failed" in n or "llm" in n for n in a.notes), a.notes
            event = next(e for e in app.store.events("answer", limit=5) if e["answer_id"] == a.id)
            assert event["tokens"]["prompt"] == a.tokens["prompt"]
        assert answered >= 2
    finally:
        app.close()


def test_post_check_would_reject_a_fabricated_number_in_a_real_source(kb_app: Spravka):
    hits = kb_app.search("Сколько дней заказ лежит в пункте выдачи?").hits
    source = next(h.text for h in hits if "5 календарных дней" in h.text)
    assert check_answer("Заказ хранится 5 календарных дней [1].", [source]).ok
    bad = check_answer("Заказ хранится 14 календарных дней [1].", [source])
    assert not bad.ok and bad.unsupported == ["14"]


def test_streaming_ends_with_the_authoritative_answer(kb_app: Spravka, llm_server: LocalModelServer):
    app = _app(kb_app, llm_server.base_url)
    try:
        events = list(app.answer_stream(QUESTIONS[0][0], mode="generative"))
    finally:
        app.close()
    final = events[-1]
    assert isinstance(final, Answer)
    assert final.citations or final.status is not AnswerStatus.ANSWERED
    shown: list[str] = []
    for e in events[:-1]:
        if isinstance(e, StreamReset):
            shown.clear()
        else:
            assert isinstance(e, str)
            shown.append(e)
    # what a client displays after applying the resets is exactly the final text
    assert "".join(shown).strip() == final.text.strip()


def test_llm_reranker_scores_are_probabilities(kb_app: Spravka, llm_server: LocalModelServer):
    app = _app(kb_app, llm_server.base_url)
    try:
        hits = app.search("Сколько дней заказ лежит в пункте выдачи?", k=2).hits
        scores = LLMReranker(app.llm).rerank("Сколько дней заказ лежит в пункте выдачи?", hits)
    finally:
        app.close()
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)


def test_dead_server_falls_back_or_fails_clearly_within_the_timeout(kb_app: Spravka, llm_gguf: Path):
    srv = LocalModelServer(llm_gguf, n_ctx=1024).start()
    fallback = _app(kb_app, srv.base_url, timeout_s=15)
    strict = _app(kb_app, srv.base_url, timeout_s=15, fallback=False)
    for app in (fallback, strict):  # warm: the embedder and the connection
        app.llm.chat([{"role": "user", "content": "Привет"}], max_tokens=2)
    srv.kill()
    try:
        q = "Сколько дней заказ лежит в пункте выдачи и можно ли продлить?"
        t = time.monotonic()
        a = fallback.answer(q, mode="generative")
        assert time.monotonic() - t < 15
        assert a.mode == "extractive" and a.status is AnswerStatus.ANSWERED
        assert any("llm unavailable" in n for n in a.notes)
        t = time.monotonic()
        with pytest.raises(ModelUnavailableError):
            strict.answer(q, mode="generative")
        assert time.monotonic() - t < 15
        assert not fallback.llm_available()  # auto mode now quotes instead of trying
        assert fallback.answer(q).mode == "extractive"
    finally:
        fallback.close()
        strict.close()
        srv.stop()


def test_local_server_starts_lazily_and_stops_on_close(kb_app: Spravka, llm_gguf: Path):
    app = Spravka(Settings(home=kb_app.home, llm={"local_model": str(llm_gguf), "n_ctx": 1024}))
    try:
        assert app.llm_available() and "local_server" not in app.__dict__
        app.llm.chat([{"role": "user", "content": "Привет"}], max_tokens=2)
        server = app.local_server
        assert server.alive() and app.llm_available()
        server.kill()  # a crashed local server: auto mode notices without waiting for a timeout
        t = time.monotonic()
        assert not app.llm_available()
        a = app.answer("Как отменить заказ, если передумал?")
        assert a.mode == "extractive" and time.monotonic() - t < 30
    finally:
        app.close()
    assert not server.alive()
