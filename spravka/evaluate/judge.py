"""An optional LLM judge (the configured model, local by default): does the answer say what the
reference answer says? Reported apart from the lexical and embedding metrics, never mixed in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from spravka.core.errors import ModelError
from spravka.evaluate.answers import AnswerRecord

if TYPE_CHECKING:
    from spravka.app import Spravka

PROMPT = (
    "Сравни ответ ассистента с эталонным ответом на вопрос. Оцени от 1 до 5, насколько ответ ассистента "
    "передаёт те же факты (1 — противоречит или не о том, 3 — частично, 5 — полностью). "
    "Верни JSON {{\"score\": число}}.\n\nВопрос: {q}\nЭталон: {ref}\nОтвет ассистента: {ans}"
)


class _Verdict(BaseModel):
    score: int = Field(ge=1, le=5)


def make_judge(app: Spravka):
    def judge(rec: AnswerRecord) -> float | None:
        try:
            v = app.llm.chat_json([{"role": "user", "content": PROMPT.format(
                q=rec.question, ref=rec.reference_answer, ans=rec.text[:1500])}], _Verdict, max_tokens=24)
        except ModelError:
            return None
        return (v.score - 1) / 4

    return judge
