"""The answer capability: retrieve → rerank? → gate → extract or generate → post-check → log.

:meth:`Answerer.answer` returns one :class:`~spravka.core.types.Answer`;
:meth:`Answerer.answer_stream` yields the same answer as events for SSE.

Streaming and the post-check: the check needs the whole text, a chat widget wants the first
words at once. We stream the model's deltas as they come and check at the end; when the check
fails (or the server dies mid-stream) we yield :class:`StreamReset` and then the replacement
text (the extractive quote, or the refusal). The final :class:`Answer` is always authoritative:
its ``text`` is what the user must end up seeing. Unlike the non-streaming path there is no
second generation after a failed check, because making the user watch a second answer being
typed is worse than an instant quote of the sources.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from spravka.answer import prompt
from spravka.answer.check import CheckResult, check_answer, citations_in
from spravka.answer.echo import source_labels, strip_echoes
from spravka.answer.extractive import citation_for, extractive_answer
from spravka.answer.gate import DEFAULT_GATE, ConfidenceGate, GateFeatures, gate_features
from spravka.answer.language import detect_language, refusal_text
from spravka.answer.rerank import Reranker
from spravka.answer.sources import Source, build_sources, related_documents
from spravka.answer.terms import QuestionTerms, question_terms
from spravka.cache.service import AnswerCache
from spravka.core.errors import ConfigError, InputError, ModelError, NotFoundError, PrivacyError
from spravka.core.filters import Filter
from spravka.core.settings import AnswerSettings
from spravka.core.text.normalize import cache_key_text, normalize_query
from spravka.core.types import Answer, AnswerStatus, Citation, Hit
from spravka.models.chat import ChatModel, ChatResult
from spravka.models.embedder import CachedEmbedder
from spravka.search.hybrid import HybridSearcher
from spravka.store.base import DocumentStore, SearchIndex

MODES = ("auto", "extractive", "generative")
#: why a model may be out of reach: down or slow, not configured, GGUF missing, privacy block
_NO_MODEL = (ModelError, ConfigError, NotFoundError, PrivacyError)
_SNIPPET = 300


@dataclass(frozen=True, slots=True)
class StreamReset:
    """Discard the text streamed so far; the text that follows replaces it."""

    reason: str


StreamEvent = str | StreamReset | Answer


@dataclass
class _Run:
    """What one answer accumulates on its way: timings, tokens, cost, notes."""

    question: str
    collection: str
    language: str
    t0: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_calls: int = 0
    cost: float = 0.0
    notes: list[str] = field(default_factory=list)

    def lap(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[name] = round(self.timings.get(name, 0.0) + (now - since) * 1000, 2)
        return now

    def add_usage(self, r: ChatResult) -> None:
        self.prompt_tokens += r.usage.prompt
        self.completion_tokens += r.usage.completion
        self.llm_calls += 1
        self.cost += r.cost

    @property
    def tokens(self) -> dict[str, int]:
        if not self.llm_calls:
            return {}
        return {
            "prompt": self.prompt_tokens,
            "completion": self.completion_tokens,
            "total": self.prompt_tokens + self.completion_tokens,
            "calls": self.llm_calls,
        }


class Answerer:
    """Answers questions over one index. ``llm`` is a factory so that a local model server
    starts only when a generative answer is actually needed; ``llm_available`` tells ``auto``
    mode whether one can be had (for a local model: the GGUF file is present)."""

    def __init__(
        self,
        searcher: HybridSearcher,
        index: SearchIndex,
        store: DocumentStore,
        settings: AnswerSettings,
        *,
        embedder: CachedEmbedder | None = None,
        llm: Callable[[], ChatModel] | None = None,
        llm_available: Callable[[], bool] | None = None,
        reranker: Reranker | None = None,
        gate: ConfidenceGate = DEFAULT_GATE,
        cache: AnswerCache | None = None,
    ) -> None:
        self.searcher = searcher
        self.index = index
        self.store = store
        self.settings = settings
        self.embedder = embedder
        self.llm = llm
        self.llm_available = llm_available or (lambda: llm is not None)
        self.reranker = reranker
        self.gate = gate
        self.cache = cache

    # ---- public API ---------------------------------------------------------------------------

    def answer(
        self,
        question: str,
        *,
        collection: str,
        flt: Filter | None = None,
        mode: str | None = None,
        escalate: bool | None = None,
        caller: dict[str, Any] | None = None,
        use_cache: bool = True,
    ) -> Answer:
        final: Answer | None = None
        for event in self._run(question, collection, flt, mode, escalate, stream=False, caller=caller,
                               use_cache=use_cache):
            if isinstance(event, Answer):
                final = event
        assert final is not None
        return final

    def answer_stream(
        self,
        question: str,
        *,
        collection: str,
        flt: Filter | None = None,
        mode: str | None = None,
        escalate: bool | None = None,
        caller: dict[str, Any] | None = None,
        use_cache: bool = True,
    ) -> Iterator[StreamEvent]:
        """Text deltas (``str``), possibly a :class:`StreamReset` followed by replacement text,
        then the final :class:`Answer`."""
        return self._run(question, collection, flt, mode, escalate, stream=True, caller=caller, use_cache=use_cache)

    def threshold(self, collection: str) -> float:
        value = self.store.collection_settings(collection).get("answer_threshold")
        try:
            t = float(value) if value is not None else self.settings.threshold
        except (TypeError, ValueError):
            return self.settings.threshold
        return min(1.0, max(0.0, t))

    def resolve_mode(self, mode: str | None) -> str:
        mode = mode or self.settings.mode
        if mode not in MODES:
            raise InputError(f"unknown answer mode '{mode}'", hint="use " + ", ".join(MODES))
        if mode == "auto":
            return "generative" if self.llm is not None and self.llm_available() else "extractive"
        return mode

    # ---- the pipeline ------------------------------------------------------------------------

    def _run(
        self,
        question: str,
        collection: str,
        flt: Filter | None,
        mode: str | None,
        escalate: bool | None,
        *,
        stream: bool,
        caller: dict[str, Any] | None = None,
        use_cache: bool = True,
    ) -> Iterator[StreamEvent]:
        s = self.settings
        requested = mode or s.mode
        mode = self.resolve_mode(requested)  # fail on a bad mode before any work
        # auto never fails for want of a model; an explicit generative mode only with fallback on
        may_fallback = requested == "auto" or s.fallback
        run = _Run(question, collection, detect_language(question))
        cache = self.cache if use_cache else None
        if cache is not None:
            t = time.perf_counter()
            threshold = self.threshold(collection)
            hit = cache.lookup(question, collection, flt, mode, threshold=threshold)
            run.lap("cache_ms", t)
            if hit is not None:
                answer = cache.answer_of(hit, normalize_query(question), uuid.uuid4().hex[:16])
                answer.language = run.language
                answer.timings_ms = {**run.timings, "total_ms": round((time.perf_counter() - run.t0) * 1000, 2)}
                answer.notes = [f"cache: {hit.match} match" + (f" ({hit.similarity:.3f})" if hit.match == "semantic"
                                                               else "")]
                self._log(answer, None, threshold, flt, {}, caller)
                yield answer.text
                yield answer
                return
        t = time.perf_counter()
        result = self.searcher.search(question, collection=collection, k=s.k, flt=flt)
        hits = list(result.hits)
        run.question = result.query
        t = run.lap("retrieve_ms", t)
        terms = question_terms(result.query, self.index, collection, flt)
        t = run.lap("gate_ms", t)
        rerank_scores: dict[str, float] = {}
        best_rerank: float | None = None
        if self.reranker is not None and hits:
            hits, rerank_scores = self._rerank(run, result.query, hits)
            best_rerank = max(rerank_scores.values()) if rerank_scores else None
            t = run.lap("rerank_ms", t)
        features = gate_features(hits, terms, best_rerank)
        confidence = self.gate.probability(features)
        threshold = self.threshold(collection)
        t = run.lap("gate_ms", t)
        escalating = s.escalate if escalate is None else escalate

        if not hits or confidence < threshold:
            run.notes.append(
                f"gate: confidence {confidence:.2f} < threshold {threshold:.2f}"
                if hits
                else "gate: nothing retrieved"
            )
            if terms.missing:
                run.notes.append("words absent from the knowledge base: " + ", ".join(terms.missing[:8]))
            answer = self._refusal(run, confidence, escalating)
            if confidence >= s.related_min_confidence:
                answer.related = related_documents(hits, s.related)
            yield answer.text
        elif mode == "generative":
            generated: Answer | None = None
            for event in self._generate(
                run, hits, terms, confidence, escalating, stream=stream, may_fallback=may_fallback
            ):
                if isinstance(event, Answer):
                    generated = event
                else:
                    yield event
            assert generated is not None
            answer = generated
        else:
            answer = self._extractive(run, hits, terms, confidence)
            yield answer.text
        answer.hits = hits
        answer.timings_ms = {**run.timings, "total_ms": round((time.perf_counter() - run.t0) * 1000, 2)}
        answer.tokens = run.tokens
        answer.cost = round(run.cost, 8)
        answer.notes = run.notes
        if cache is not None:
            answer.cache = {"result": "miss", "stored": cache.save(question, answer, flt, mode)}
        self._log(answer, features, threshold, flt, rerank_scores, caller)
        yield answer

    def _rerank(self, run: _Run, question: str, hits: list[Hit]) -> tuple[list[Hit], dict[str, float]]:
        assert self.reranker is not None
        head, tail = hits[: self.settings.rerank_top], hits[self.settings.rerank_top :]
        try:
            scorer = getattr(self.reranker, "score", None)
            if callable(scorer):
                scores, usage = scorer(question, head)
                run.prompt_tokens += usage.prompt_tokens
                run.completion_tokens += usage.completion_tokens
                run.cost += usage.cost
                run.llm_calls += len(head)
            else:
                scores = self.reranker.rerank(question, head)
        except _NO_MODEL as e:
            run.notes.append(f"rerank skipped: {e.message}")
            return hits, {}
        by_id = {h.chunk_id: float(sc) for h, sc in zip(head, scores, strict=True)}
        head = sorted(head, key=lambda h: by_id[h.chunk_id], reverse=True)
        for i, h in enumerate(head + tail, start=1):
            h.rank = i
        return head + tail, by_id

    def _refusal(self, run: _Run, confidence: float, escalating: bool) -> Answer:
        return Answer(
            question=run.question,
            text=refusal_text(run.language, escalate=escalating),
            status=AnswerStatus.ESCALATE if escalating else AnswerStatus.REFUSED,
            confidence=round(confidence, 4),
            mode="refusal",
            collection=run.collection,
            id=uuid.uuid4().hex[:16],
            language=run.language,
        )

    def _extractive(self, run: _Run, hits: list[Hit], terms: QuestionTerms, confidence: float) -> Answer:
        t = time.perf_counter()
        embedder = self.embedder if self.settings.sentence_embeddings else None
        texts: dict[str, str | None] = {}

        def doc_text(doc_id: str) -> str | None:
            if doc_id not in texts:
                texts[doc_id] = self.store.document_text(run.collection, doc_id)
            return texts[doc_id]

        text, citations = extractive_answer(
            run.question,
            hits,
            terms,
            max_sentences=self.settings.max_sentences,
            embedder=embedder,
            doc_text=doc_text,
        )
        if not text:  # only headings or fragments in the top chunks: quote the best chunk
            hit = hits[0]
            snippet = _shorten(hit.text)
            text, citations = f"{snippet} [1]", [citation_for(1, hit, snippet)]
        run.lap("extract_ms", t)
        return Answer(
            question=run.question,
            text=text,
            status=AnswerStatus.ANSWERED,
            confidence=round(confidence, 4),
            citations=citations,
            mode="extractive",
            collection=run.collection,
            id=uuid.uuid4().hex[:16],
            language=run.language,
        )

    # ---- generation ---------------------------------------------------------------------------

    def _generate(
        self,
        run: _Run,
        hits: list[Hit],
        terms: QuestionTerms,
        confidence: float,
        escalating: bool,
        *,
        stream: bool,
        may_fallback: bool,
    ) -> Iterator[StreamEvent]:
        s = self.settings
        t = time.perf_counter()
        sources = build_sources(
            hits,
            run.collection,
            self.index,
            self.store,
            max_sources=s.max_sources,
            window_chars=s.window_chars,
        )
        texts = [src.render() for src in sources]  # with titles: «Условия доставки» is a fact too
        labels = source_labels(texts)
        t = run.lap("sources_ms", t)
        streamed = False
        try:
            if self.llm is None:
                raise ConfigError(
                    "no LLM is configured", hint="set [llm] in spravka.toml or use mode=extractive"
                )
            model = self.llm()
            t = run.lap("llm_start_ms", t)
            msgs = prompt.messages(run.question, sources, run.language)
            if stream:
                parts: list[str] = []
                final: ChatResult | None = None
                for item in model.stream(msgs, max_tokens=s.max_tokens, temperature=s.temperature):
                    if isinstance(item, str):
                        parts.append(item)
                        streamed = True
                        yield item
                    else:
                        final = item
                if final is not None:
                    run.add_usage(final)
                text = _clean("".join(parts))
            else:
                r = model.chat(msgs, max_tokens=s.max_tokens, temperature=s.temperature)
                run.add_usage(r)
                text = _clean(r.text)
                if r.finish_reason == "length":
                    text = _trim_unfinished(text)
                    run.notes.append("llm: hit max_tokens, cut after the last complete sentence")
            shown = text
            text = self._strip_echoes(run, text, labels)
            t = run.lap("generate_ms", t)
        except _NO_MODEL as e:
            run.lap("generate_ms", t)
            if not may_fallback:
                raise
            run.notes.append(f"llm unavailable, answered extractively: {e.message}")
            if streamed:
                yield StreamReset("the language model failed mid-answer")
            answer = self._extractive(run, hits, terms, confidence)
            yield answer.text
            yield answer
            return

        if prompt.is_no_answer(text) and not citations_in(text):
            run.notes.append("llm: the sources do not answer the question")
            answer = self._refusal(run, confidence, escalating)
            if streamed:
                yield StreamReset("the model found no answer in the sources")
            yield answer.text
            yield answer
            return

        check = check_answer(text, texts, run.question)
        t = run.lap("check_ms", t)
        if not check.ok and not stream:
            run.notes.append(
                "post-check failed (" + "; ".join(check.problems) + "), retried with a stricter prompt"
            )
            try:
                r = model.chat(
                    prompt.messages(run.question, sources, run.language, check.explain(run.language)),
                    max_tokens=s.max_tokens,
                    temperature=0.0,
                )
                run.add_usage(r)
                retry_text = self._strip_echoes(run, _clean(r.text), labels)
                t = run.lap("generate_ms", t)
                retry = check_answer(retry_text, texts, run.question)
                t = run.lap("check_ms", t)
                if retry.ok:
                    text = retry_text
                check = retry
            except (ModelError, PrivacyError) as e:
                run.notes.append(f"retry failed: {e.message}")
        if not check.ok:
            run.notes.append(
                "post-check failed (" + "; ".join(check.problems) + "): downgraded to extractive"
            )
            if stream and streamed:
                yield StreamReset("the answer failed the citation check")
            answer = self._extractive(run, hits, terms, confidence)
            yield answer.text
            yield answer
            return
        answer = Answer(
            question=run.question,
            text=text,
            status=AnswerStatus.ANSWERED,
            confidence=round(confidence, 4),
            citations=[_source_citation(sources[n - 1]) for n in check.cited],
            mode="generative",
            collection=run.collection,
            id=uuid.uuid4().hex[:16],
            language=run.language,
        )
        if not stream:
            yield answer.text
        elif streamed and text != shown:  # the echoed question or titles were streamed: replace them
            yield StreamReset("removed lines that repeated the question or a source title")
            yield answer.text
        yield answer

    def _strip_echoes(self, run: _Run, text: str, labels: Sequence[str]) -> str:
        """The answer without the lines that repeat the question or a source's title (echo.py)."""
        cleaned, removed = strip_echoes(text, run.question, labels)
        if removed:
            run.notes.append(f"llm: removed {removed} line(s) repeating the question or a source title")
        return cleaned

    # ---- the event log ------------------------------------------------------------------------

    def _log(
        self,
        a: Answer,
        f: GateFeatures | None,
        threshold: float,
        flt: Filter | None,
        rerank: dict[str, float],
        caller: dict[str, Any] | None = None,
    ) -> None:
        payload: dict[str, Any] = {
            "answer_id": a.id,
            "question": a.question,
            "normalized": cache_key_text(a.question),
            "language": a.language,
            "mode": a.mode,
            "decision": str(a.status),
            "confidence": a.confidence,
            "threshold": threshold,
            "features": f.as_dict() if f is not None else None,
            "cited": [c.doc_id for c in a.citations],
            "cited_chunks": [c.chunk_id for c in a.citations],
            "hits": [[h.chunk_id, round(h.score, 4)] for h in a.hits],
            "timings_ms": a.timings_ms,
            "tokens": a.tokens,
            "cost": a.cost,
            "notes": a.notes,
            "filters": _filter_repr(flt),
        }
        if rerank:
            payload["rerank"] = [[cid, round(v, 4)] for cid, v in rerank.items()]
        if a.cache:
            payload["cache"] = a.cache.get("result")
            if a.cache.get("result") == "hit":
                payload["cache_match"] = a.cache.get("match")
                payload["cache_similarity"] = a.cache.get("similarity")
                payload["saved"] = {"llm_calls": a.cache.get("saved_llm_calls", 0),
                                    "tokens": a.cache.get("saved_tokens", 0), "cost": a.cache.get("saved_cost", 0.0)}
        if caller:
            payload["caller"] = caller
        self.store.log_event("answer", payload, collection=a.collection)


def _source_citation(src: Source) -> Citation:
    c = citation_for(src.n, src.hit, _shorten(src.hit.text))
    return c


def _shorten(text: str, limit: int = _SNIPPET) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def _clean(text: str) -> str:
    """The model's answer without a leading «Ответ:» echo of the prompt."""
    text = text.strip()
    for label in ("Ответ:", "Answer:"):
        if text.startswith(label):
            text = text[len(label) :].lstrip()
    return text


def _trim_unfinished(text: str) -> str:
    """An answer cut at ``max_tokens``: keep it up to its last citation or full stop."""
    cut = max(text.rfind("]"), text.rfind(". "), text.rfind(".\n"))
    return text[: cut + 1].rstrip() if cut > 0 else text


def _filter_repr(flt: Filter | None) -> dict | None:
    if flt is None or flt.empty:
        return None
    return {
        "conditions": [[c.field, c.op, c.value] for c in flt.conditions],
        "groups": list(flt.groups) if flt.groups is not None else None,
    }


__all__ = ["MODES", "Answerer", "CheckResult", "StreamEvent", "StreamReset"]
