"""The ``Reranker`` port: how relevant is each hit to the question, as a probability in [0, 1].

The hybrid search is already fused, so reranking is off by default; it pays off where the
candidates are close in wording and a model that reads question and passage together can tell
them apart. Adapters:

* :class:`LLMReranker`: yes/no relevance through the chat model (one short call per hit).
  With ``logprobs`` the probability of «да»/"yes" against «нет»/"no" on the first token is the
  score (measured on the llama.cpp server here: ``logprobs``/``top_logprobs`` come back in
  ``choices[0].logprobs.content``, carried by :attr:`ChatResult.logprobs`). A server that returns
  no logprobs gets a schema-constrained JSON score from 0 to 10 instead.
* :class:`HttpReranker`: a ``/rerank`` endpoint (TEI, Infinity, llama.cpp ``--reranking``,
  Jina/Cohere-style APIs): ``{query, documents | texts}`` → results with a relevance score.
* :class:`CrossEncoderReranker`: sentence-transformers ``CrossEncoder`` (optional import).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, Field

from spravka.answer.language import detect_language
from spravka.core.errors import ConfigError, ModelError, ModelUnavailableError
from spravka.core.types import Hit
from spravka.models.chat import ChatModel

#: characters of a passage shown to a reranker (small models: keep prompts short)
PASSAGE_CHARS = 900


@runtime_checkable
class Reranker(Protocol):
    name: str

    def rerank(self, question: str, hits: Sequence[Hit]) -> list[float]:
        """One relevance probability in [0, 1] per hit, in the order given."""
        ...


@dataclass(frozen=True, slots=True)
class RerankUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


def passage(hit: Hit, limit: int = PASSAGE_CHARS) -> str:
    head = hit.title if not hit.heading or hit.heading == hit.title else f"{hit.title} — {hit.heading}"
    text = hit.text if len(hit.text) <= limit else hit.text[:limit].rsplit(" ", 1)[0] + " …"
    return f"{head}\n{text}" if head and not hit.text.startswith(head) else text


def as_probability(score: float) -> float:
    """Scores already in [0, 1] stay; raw logits (cross-encoders, TEI ``raw_scores``) go through a sigmoid."""
    if 0.0 <= score <= 1.0:
        return float(score)
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, score))))


# ---------------------------------------------------------------------------------------------
# LLM


class _Relevance(BaseModel):
    score: int = Field(ge=0, le=10, description="0 = unrelated, 10 = the passage answers the question fully")


_YES_NO_PROMPT = {
    "ru": (
        "Ты проверяешь, отвечает ли фрагмент базы знаний на вопрос пользователя. "
        "Ответь одним словом: «да» или «нет».",
        "Вопрос: {q}\n\nФрагмент:\n{p}\n\nОтвечает ли фрагмент на вопрос?",
    ),
    "en": (
        "You check whether a knowledge-base passage answers a user's question. Answer with one word: yes or no.",
        "Question: {q}\n\nPassage:\n{p}\n\nDoes the passage answer the question?",
    ),
}
_SCORE_PROMPT = {
    "ru": (
        "Ты оцениваешь, насколько фрагмент базы знаний отвечает на вопрос пользователя, по шкале от 0 "
        "(не относится к вопросу) до 10 (полностью отвечает).",
        "Вопрос: {q}\n\nФрагмент:\n{p}\n\nОценка от 0 до 10:",
    ),
    "en": (
        "Rate how well a knowledge-base passage answers a user's question from 0 (unrelated) to 10 (fully answers).",
        "Question: {q}\n\nPassage:\n{p}\n\nScore from 0 to 10:",
    ),
}
_YES = ("да", "yes", "д", "y")
_NO = ("нет", "no", "н", "n")


def yes_probability(top_logprobs: Mapping[str, float]) -> float | None:
    """P(yes) / (P(yes) + P(no)) from the first token's top log-probabilities; None when neither
    word is among them. Tokens are compared stripped and lower-cased («Да», " yes")."""
    yes = no = 0.0
    for token, lp in top_logprobs.items():
        t = token.strip().lower()
        if t in _YES:
            yes += math.exp(lp)
        elif t in _NO:
            no += math.exp(lp)
    if yes + no <= 0:
        return None
    return yes / (yes + no)


def first_token_logprobs(result: Any) -> dict[str, float] | None:
    """``{token: logprob}`` of the first generated token, if the chat result carries logprobs
    (``result.logprobs``: the OpenAI ``choices[0].logprobs.content`` list)."""
    content = getattr(result, "logprobs", None)
    if not content:
        return None
    first = content[0] if isinstance(content, list) else None
    if not isinstance(first, Mapping):
        return None
    top = first.get("top_logprobs") or [first]
    return {str(t.get("token", "")): float(t.get("logprob", -100.0)) for t in top if isinstance(t, Mapping)}


class LLMReranker:
    """Yes/no relevance of the top hits through the chat model (temperature 0).

    ``model`` may be a callable, so that the composition root starts a local server only when
    reranking actually runs.
    """

    name = "llm"

    def __init__(
        self, model: ChatModel | Callable[[], ChatModel], *, passage_chars: int = PASSAGE_CHARS
    ) -> None:
        self._get: Callable[[], ChatModel] = (lambda: model) if isinstance(model, ChatModel) else model
        self.passage_chars = passage_chars
        #: None until the first call tells whether the client returns logprobs
        self.logprobs: bool | None = None

    @property
    def model(self) -> ChatModel:
        return self._get()

    def rerank(self, question: str, hits: Sequence[Hit]) -> list[float]:
        return self.score(question, hits)[0]

    def score(self, question: str, hits: Sequence[Hit]) -> tuple[list[float], RerankUsage]:
        """Scores plus the tokens and cost they took (for the answer's accounting)."""
        model = self.model
        lang = detect_language(question)
        scores: list[float] = []
        usage = RerankUsage()
        for hit in hits:
            p, u = self._one(model, lang, question, passage(hit, self.passage_chars))
            scores.append(p)
            usage = RerankUsage(
                usage.prompt_tokens + u.prompt_tokens,
                usage.completion_tokens + u.completion_tokens,
                usage.cost + u.cost,
            )
        return scores, usage

    def _one(self, model: ChatModel, lang: str, question: str, text: str) -> tuple[float, RerankUsage]:
        usage = RerankUsage()
        answer = ""
        if self.logprobs is not False:
            system, user = _YES_NO_PROMPT[lang]
            msgs = [
                {"role": "system", "content": system},
                {"role": "user", "content": user.format(q=question, p=text)},
            ]
            result = model.chat(
                msgs, max_tokens=1, temperature=0.0, extra={"logprobs": True, "top_logprobs": 10}
            )
            usage = RerankUsage(result.usage.prompt, result.usage.completion, result.cost)
            answer = result.text.strip().lower()
            top = first_token_logprobs(result)
            self.logprobs = top is not None
            p = yes_probability(top) if top else None
            if p is not None:
                return p, usage
        # No logprobs from the client: a schema-constrained 0-10 score.
        system, user = _SCORE_PROMPT[lang]
        msgs = [
            {"role": "system", "content": system},
            {"role": "user", "content": user.format(q=question, p=text)},
        ]
        try:
            rated = model.chat_json(msgs, _Relevance, max_tokens=16, temperature=0.0)
        except ModelUnavailableError:
            raise
        except ModelError:
            return (1.0 if answer.startswith(_YES) else 0.0 if answer.startswith(_NO) else 0.5), usage
        return rated.score / 10.0, usage


# ---------------------------------------------------------------------------------------------
# HTTP


class HttpReranker:
    """``POST url`` with ``{"query", "documents"}`` (Infinity, llama.cpp, Jina, Cohere) or, when
    the server rejects that, ``{"query", "texts"}`` (TEI). Answers may be a list of
    ``{"index", "score"}`` (TEI) or ``{"results": [{"index", "relevance_score"}]}``."""

    name = "http"

    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"reranker URL must be http(s), got {url!r}", hint="set answer.rerank_url")
        self.url = url
        self.model = model
        self._style = "documents"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)),
            headers=headers,
            transport=transport,
        )

    def rerank(self, question: str, hits: Sequence[Hit]) -> list[float]:
        if not hits:
            return []
        docs = [passage(h) for h in hits]
        resp = self._post(question, docs, self._style)
        if resp.status_code in (400, 404, 422) and self._style == "documents":
            retry = self._post(question, docs, "texts")
            if retry.status_code < 400:
                self._style = "texts"
                resp = retry
        if resp.status_code >= 400:
            raise ModelError(f"reranker at {self.url} answered HTTP {resp.status_code}: {resp.text[:200]}")
        return parse_rerank_response(resp.json(), len(hits))

    def _post(self, question: str, docs: list[str], style: str) -> httpx.Response:
        body: dict[str, Any] = {"query": question, style: docs}
        if style == "documents":
            body["top_n"] = len(docs)
            if self.model:
                body["model"] = self.model
        try:
            return self._http.post(self.url, json=body)
        except httpx.HTTPError as e:
            raise ModelUnavailableError(
                f"reranker at {self.url} is unavailable: {type(e).__name__}: {e}"
            ) from e

    def close(self) -> None:
        self._http.close()


def parse_rerank_response(data: Any, n: int) -> list[float]:
    """Scores in the order of the documents sent, whatever order the server returned them in."""
    items = data.get("results", data.get("data")) if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise ModelError(f"unexpected rerank response: {str(data)[:200]}")
    scores = [0.0] * n
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ModelError(f"unexpected rerank item: {str(item)[:200]}")
        idx = int(item.get("index", i))
        value = item.get("relevance_score", item.get("score"))
        if value is None or not 0 <= idx < n:
            raise ModelError(f"unexpected rerank item: {str(item)[:200]}")
        scores[idx] = as_probability(float(value))
    return scores


# ---------------------------------------------------------------------------------------------
# sentence-transformers


class CrossEncoderReranker:
    """A local cross-encoder (``pip install sentence-transformers``; pulls in torch, so it is
    not part of any default install)."""

    name = "cross-encoder"

    def __init__(self, model: str, *, max_length: int = 512) -> None:
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as e:
            raise ConfigError(
                "answer.rerank = 'cross-encoder' needs sentence-transformers",
                hint="pip install sentence-transformers (and torch==2.13.0 CPU), or use rerank = 'http' / 'llm'",
            ) from e
        self._model = CrossEncoder(model, max_length=max_length)

    def rerank(self, question: str, hits: Sequence[Hit]) -> list[float]:
        if not hits:
            return []
        raw = self._model.predict([(question, passage(h)) for h in hits])
        return [as_probability(float(s)) for s in raw]
