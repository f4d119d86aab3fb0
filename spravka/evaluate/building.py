"""Growing golden sets: candidates from the query log, and synthetic questions from the KB.

* Real questions that were refused, escalated or rated badly are the best material: they are
  what users actually ask and what the knowledge base fails on. They are exported unlabelled
  (``"review": true``): a person fills in the expected sources or marks them ``should_refuse``.
* Synthetic questions are written by the local LLM from a chunk (the chunk's document is the
  expected source). They are flagged ``"synthetic": true`` so reports can keep them apart.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from spravka.core.types import DocStatus

if TYPE_CHECKING:
    from spravka.app import Spravka


def log_candidates(events: Iterable[dict[str, Any]], feedback: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Golden-set candidates from ``answer`` events and ``feedback`` events (newest first)."""
    bad: dict[str, str] = {}
    for f in feedback:
        rating = str(f.get("rating", f.get("value", ""))).lower()
        if rating in ("down", "-1", "bad", "negative", "false", "0") and f.get("answer_id"):
            bad[str(f["answer_id"])] = str(f.get("comment") or "")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for e in events:
        aid = str(e.get("answer_id") or "")
        reason = None
        if e.get("decision") in ("refused", "escalate"):
            reason = e["decision"]
        elif aid in bad:
            reason = "rated_down"
        q = (e.get("question") or "").strip()
        if not reason or not q or q.lower() in seen:
            continue
        seen.add(q.lower())
        item = {"id": f"log-{aid or len(out)}", "question": q, "expected_sources": [], "should_refuse": False,
                "review": True, "reason": reason, "collection": e.get("collection"),
                "answer_cited": e.get("cited", []), "confidence": e.get("confidence")}
        if aid in bad and bad[aid]:
            item["comment"] = bad[aid]
        out.append(item)
    return out


def export_candidates(app: Spravka, out: Path, *, collection: str | None = None, limit: int = 1000) -> int:
    answers = [e for e in app.store.events("answer", limit=limit * 5)
               if collection is None or e.get("collection") == collection]
    feedback = list(app.store.events("feedback", limit=limit * 5))
    items = log_candidates(answers, feedback)[:limit]
    write_jsonl(out, items)
    return len(items)


class _SyntheticQuestion(BaseModel):
    question: str = Field(min_length=8, max_length=300)


PROMPT = (
    "Ниже фрагмент из базы знаний компании. Придумай ОДИН вопрос, который мог бы задать клиент или "
    "сотрудник своими словами, и на который этот фрагмент отвечает. Не копируй фразы фрагмента дословно. "
    "Пиши на языке фрагмента. Верни JSON {{\"question\": \"...\"}}.\n\nФрагмент:\n{text}"
)


def generate_synthetic(app: Spravka, collection: str, *, per_doc: int = 1, limit: int = 50, seed: int = 0,
                       progress: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """One question per sampled chunk, written by the configured LLM (the local model offline)."""
    rnd = random.Random(seed)
    docs = app.store.list_documents(collection, DocStatus.OK)
    rnd.shuffle(docs)
    items: list[dict[str, Any]] = []
    for doc in docs:
        if len(items) >= limit:
            break
        text = app.store.document_text(collection, doc.id) or ""
        spans = app.index.chunk_spans(collection, doc.id)
        for ord_, start, end in rnd.sample(spans, min(per_doc, len(spans))):
            chunk = text[start:end]
            if len(chunk) < 80:
                continue
            q = app.llm.chat_json([{"role": "user", "content": PROMPT.format(text=chunk[:1500])}], _SyntheticQuestion,
                                  temperature=0.7, max_tokens=96)
            items.append({"id": f"syn-{len(items) + 1:04d}", "question": q.question.strip(),
                          "expected_sources": [doc.id], "reference_answer": chunk, "should_refuse": False,
                          "synthetic": True, "chunk": f"{doc.id}#{ord_}"})
            if progress:
                progress()
            if len(items) >= limit:
                break
    return items


def write_jsonl(path: Path, items: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")


def append_jsonl(path: Path, items: Iterable[dict[str, Any]]) -> int:
    """Append items whose question is not in the file yet (case-insensitive); returns how many."""
    seen: set[str] = set()
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    seen.add(str(json.loads(line).get("question", "")).strip().lower())
                except ValueError:
                    continue
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("a", encoding="utf-8") as f:
        for item in items:
            q = str(item.get("question", "")).strip().lower()
            if not q or q in seen:
                continue
            seen.add(q)
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
            n += 1
    return n
