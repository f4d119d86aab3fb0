"""The LLM classifier: few-shot, schema-constrained output through the one chat path.

The model must answer ``{"label": …, "reason": …}`` where ``label`` is a JSON-schema enum of the
candidate labels plus ``unknown``, so llama.cpp/vLLM grammar-constrain the decoding and the
answer is always a valid label (or an explicit "none fits"). The few shots are the labelled
examples nearest to the ticket, so a fresh correction also teaches the LLM.

An LLM's own confidence is not calibrated, so its vote is combined with the embedding model's
probabilities as a noisy oracle: ``P(y | llm said j) ∝ p(y) · (a if y == j else (1-a)/(K-1))``,
with ``a`` (``classify.llm_accuracy``) how often the model is right on its own (measure it with
``spravka classify eval --llm``) and ``K`` the number of candidates it chose from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, create_model

from spravka.classify.taxonomy import Taxonomy

UNKNOWN = "unknown"

SYSTEM = (
    "Ты распределяешь обращения клиентов и сотрудников по категориям службы поддержки. "
    "Выбери ровно одну категорию из списка. Если ни одна не подходит, выбери «unknown». "
    "Ответь JSON-объектом: label — категория, reason — короткое объяснение по-русски (до 15 слов)."
)


def verdict_schema(labels: Sequence[str]) -> type[BaseModel]:
    """A pydantic model whose ``label`` is an enum of ``labels`` and ``unknown``."""
    choices = tuple(dict.fromkeys([*labels, UNKNOWN]))
    return create_model(
        "TicketCategory",
        label=(Literal[choices], ...),  # type: ignore[valid-type]
        reason=(str, Field("", max_length=200)),
    )


class LlmClassifier:
    def __init__(self, llm: Callable[[], object], taxonomy: Taxonomy, *, max_tokens: int = 96) -> None:
        self._llm = llm
        self.taxonomy = taxonomy
        self.max_tokens = max_tokens

    def messages(self, text: str, candidates: Sequence[str], shots: Sequence[tuple[str, str]]) -> list[dict]:
        lines = ["Категории:"]
        for lab in candidates:
            node = self.taxonomy.nodes.get(lab)
            desc = f": {node.description}" if node and node.description else ""
            title = f" — {node.title}" if node and node.title != lab else ""
            lines.append(f"- {lab}{title}{desc}")
        lines.append(f"- {UNKNOWN} — ни одна категория не подходит")
        usable = [(t, lab) for t, lab in shots if lab in candidates]
        if usable:
            lines.append("\nПримеры обращений с верной категорией:")
            lines += [f"Обращение: {t[:300]}\nКатегория: {lab}" for t, lab in usable]
        lines.append(f"\nОбращение: {text[:1500]}")
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]

    def ask(self, text: str, candidates: Sequence[str], shots: Sequence[tuple[str, str]] = ()) -> tuple[str, str]:
        """(label or ``unknown``, reason). Raises the chat client's ``ModelError`` when the model
        fails twice to produce valid JSON or is unavailable."""
        schema = verdict_schema(candidates)
        llm = self._llm()
        out = llm.chat_json(self.messages(text, candidates, shots), schema, temperature=0.0,  # type: ignore[attr-defined]
                            max_tokens=self.max_tokens)
        return str(out.label), str(out.reason).strip()


def combine(prior: np.ndarray, candidates: Sequence[int], chosen: int | None, accuracy: float) -> np.ndarray:
    """Posterior over all labels after the LLM chose ``chosen`` among ``candidates`` (None:
    ``unknown``, which says nothing about which candidate is right and leaves the prior as is)."""
    if chosen is None or len(candidates) < 2:
        return prior
    # a label that was not offered: the choice among the K offered ones is a coin toss
    likelihood = np.full_like(prior, 1.0 / len(candidates))
    likelihood[list(candidates)] = (1 - accuracy) / (len(candidates) - 1)
    likelihood[chosen] = accuracy
    post = prior * likelihood
    return post / post.sum()
