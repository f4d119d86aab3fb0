"""Answers with citations and honest refusals.

``question → retrieve (filters and access groups inside the index query) → rerank? → confidence
gate → extractive quote or generative answer over numbered sources → post-check → Answer → log``

:class:`Answerer` is the capability; :mod:`spravka.app` builds it from settings.
"""

from spravka.answer.check import CheckResult, check_answer
from spravka.answer.gate import DEFAULT_GATE, ConfidenceGate, GateFeatures, gate_features
from spravka.answer.language import detect_language, refusal_text
from spravka.answer.pipeline import Answerer, StreamReset
from spravka.answer.rerank import CrossEncoderReranker, HttpReranker, LLMReranker, Reranker

__all__ = [
    "DEFAULT_GATE",
    "Answerer",
    "CheckResult",
    "ConfidenceGate",
    "CrossEncoderReranker",
    "GateFeatures",
    "HttpReranker",
    "LLMReranker",
    "Reranker",
    "StreamReset",
    "check_answer",
    "detect_language",
    "gate_features",
    "refusal_text",
]
