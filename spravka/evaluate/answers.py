"""Answer metrics: refusals, citations, groundedness, and closeness to a reference answer.

Everything here runs offline with what ships in the package: lemma overlap for groundedness,
the embedding model for similarity, and lemma overlap again for ``reference_recall`` (the
share of the reference answer's own words and numbers that the answer contains). An LLM judge
(the local model) is optional and reported separately, never mixed into the lexical figures.

Conventions:
* *refusal* metrics treat "refused or escalated" as the positive class and ``should_refuse`` as
  the truth: precision = share of refusals that were right, recall = share of unanswerable
  questions that were refused;
* *answer* metrics are the mirror image (an answer is positive);
* citation metrics look at answered, answerable questions only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spravka.core.text.lemmas import analyze
from spravka.core.text.sentences import split_sentences

_CITATION = re.compile(r"\[\d+(?:\s*[,;]\s*\d+)*\]")


@dataclass(slots=True)
class AnswerRecord:
    """One golden question's answer, flattened to what the metrics need."""

    id: str
    question: str
    should_refuse: bool
    expected_sources: list[str]
    status: str
    confidence: float
    text: str
    mode: str
    cited_docs: list[str] = field(default_factory=list)
    cited_text: str = ""
    reference_answer: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    cost: float = 0.0
    retrieved_docs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # filled by score_answer
    refused: bool = False
    correct_decision: bool = False
    cited_expected: bool | None = None
    citation_precision: float | None = None
    groundedness: float | None = None
    similarity: float | None = None
    reference_recall: float | None = None
    judge: float | None = None


def _ratio(num: float, den: float) -> float:
    return round(num / den, 4) if den else 0.0


def f1(p: float, r: float) -> float:
    return round(2 * p * r / (p + r), 4) if p + r else 0.0


def sentence_support(sentence: str, source_lemmas: set[str]) -> float:
    """Share of a sentence's content lemmas that occur in the cited sources."""
    terms = [t for t in analyze(_CITATION.sub(" ", sentence)) if len(t) > 1]
    if not terms:
        return 1.0
    return sum(1 for t in terms if t in source_lemmas) / len(terms)


def groundedness(answer: str, sources_text: str, threshold: float = 0.6) -> float:
    """Share of answer sentences whose content words are (mostly) found in the cited text."""
    text = _CITATION.sub(" ", answer)
    sentences = [text[s:e] for s, e in split_sentences(text)]
    sentences = [s for s in sentences if len(analyze(s)) >= 2]
    if not sentences:
        return 1.0 if answer.strip() else 0.0
    lemmas = set(analyze(sources_text))
    return round(sum(1 for s in sentences if sentence_support(s, lemmas) >= threshold) / len(sentences), 4)


def reference_recall(answer: str, reference: str, question: str = "") -> float | None:
    """Share of the reference answer's content lemmas and numbers that ``answer`` contains.

    Words of the question do not count: an answer gets nothing for repeating the question, and
    «28 календарных дней» is what a reference «Отпуск — 28 календарных дней» is checked for.
    None when the reference adds nothing to the question.
    """
    wanted = set(analyze(reference)) - set(analyze(question))
    if not wanted:
        return None
    got = set(analyze(_CITATION.sub(" ", answer)))
    return round(len(wanted & got) / len(wanted), 4)


def score_answer(rec: AnswerRecord, aliases: dict[str, str] | None = None,
                 embed: Callable[[Sequence[str]], np.ndarray] | None = None) -> AnswerRecord:
    aliases = aliases or {}
    rec.refused = rec.status in ("refused", "escalate")
    rec.correct_decision = rec.refused == rec.should_refuse
    if not rec.refused and not rec.should_refuse and rec.expected_sources:
        expected = {aliases.get(e, e) for e in rec.expected_sources}
        cited = [aliases.get(d, d) for d in rec.cited_docs]
        rec.cited_expected = bool(set(cited) & expected)
        rec.citation_precision = _ratio(sum(1 for d in cited if d in expected), len(cited)) if cited else 0.0
    if not rec.refused:
        rec.groundedness = groundedness(rec.text, rec.cited_text)
        if rec.reference_answer:
            rec.reference_recall = reference_recall(rec.text, rec.reference_answer, rec.question)
        if embed is not None and rec.reference_answer:
            v = embed([_CITATION.sub(" ", rec.text), rec.reference_answer])
            rec.similarity = round(float(np.dot(v[0], v[1])), 4)
    return rec


def summarize_answers(records: Sequence[AnswerRecord]) -> dict[str, Any]:
    n = len(records)
    refused = [r for r in records if r.refused]
    unanswerable = [r for r in records if r.should_refuse]
    answered = [r for r in records if not r.refused]
    answerable = [r for r in records if not r.should_refuse]
    rp = _ratio(sum(1 for r in refused if r.should_refuse), len(refused))
    rr = _ratio(sum(1 for r in unanswerable if r.refused), len(unanswerable))
    ap = _ratio(sum(1 for r in answered if not r.should_refuse), len(answered))
    ar = _ratio(sum(1 for r in answerable if not r.refused), len(answerable))
    cited = [r for r in records if r.cited_expected is not None]
    grounded = [r.groundedness for r in records if r.groundedness is not None]
    sims = [r.similarity for r in records if r.similarity is not None]
    recalls = [r.reference_recall for r in records if r.reference_recall is not None]
    judged = [r.judge for r in records if r.judge is not None]
    out: dict[str, Any] = {
        "n": n,
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "decision_accuracy": _ratio(sum(1 for r in records if r.correct_decision), n),
        "refusal_precision": rp,
        "refusal_recall": rr,
        "refusal_f1": f1(rp, rr),
        "answer_precision": ap,
        "answer_recall": ar,
        "answer_f1": f1(ap, ar),
        "citation_hit": _ratio(sum(1 for r in cited if r.cited_expected), len(cited)),
        "citation_precision": round(float(np.mean([r.citation_precision for r in cited])), 4) if cited else 0.0,
        "groundedness": round(float(np.mean(grounded)), 4) if grounded else 0.0,
        "similarity": round(float(np.mean(sims)), 4) if sims else None,
        "reference_recall": round(float(np.mean(recalls)), 4) if recalls else None,
        "judge": round(float(np.mean(judged)), 4) if judged else None,
    }
    return out


def summarize_operations(records: Sequence[AnswerRecord]) -> dict[str, Any]:
    """Latency per stage (p50/p95), tokens and cost per question."""
    out: dict[str, Any] = {}
    stages = sorted({k for r in records for k in r.timings_ms})
    for stage in stages:
        vals = [r.timings_ms[stage] for r in records if stage in r.timings_ms]
        name = stage.removesuffix("_ms")
        out[f"{name}_p50_ms"] = round(float(np.percentile(vals, 50)), 2)
        out[f"{name}_p95_ms"] = round(float(np.percentile(vals, 95)), 2)
    n = max(1, len(records))
    out["tokens_per_question"] = round(sum(sum(r.tokens.values()) for r in records) / n, 1)
    out["cost_per_question"] = round(sum(r.cost for r in records) / n, 6)
    modes: dict[str, int] = {}
    for r in records:
        modes[r.mode] = modes.get(r.mode, 0) + 1
    out["modes"] = modes
    return out
