"""One evaluation run: every golden question through search and the answer pipeline.

A run is a plain JSON document (meta, metric groups, per-question rows) so two runs can be
compared later (:mod:`spravka.evaluate.compare`), rendered (:mod:`spravka.evaluate.report`) or
kept as a release artefact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spravka import __version__
from spravka.core.filters import parse_filters
from spravka.core.types import DocStatus
from spravka.evaluate.answers import AnswerRecord, score_answer, summarize_answers, summarize_operations
from spravka.evaluate.golden import GoldenItem
from spravka.evaluate.retrieval import hit_ranking, score_question, summarize

if TYPE_CHECKING:
    from spravka.app import Spravka

RUN_FORMAT = 1


@dataclass
class EvalRun:
    meta: dict[str, Any]
    retrieval: dict[str, Any]
    answers: dict[str, Any] | None = None
    operations: dict[str, Any] | None = None
    questions: list[dict[str, Any]] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """Every numeric metric, flattened as ``group.name`` (what ``compare`` gates on)."""
        flat: dict[str, float] = {}
        for group in ("retrieval", "answers", "operations"):
            for k, v in (getattr(self, group) or {}).items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    flat[f"{group}.{k}"] = float(v)
        return flat

    def to_json(self) -> dict[str, Any]:
        return {"format": RUN_FORMAT, **asdict(self)}

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> EvalRun:
        from spravka.core.errors import InputError

        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"cannot read evaluation run {path}: {e}") from e
        if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
            raise InputError(f"{path} is not a Spravka evaluation run (format {RUN_FORMAT})")
        return cls(meta=data["meta"], retrieval=data["retrieval"], answers=data.get("answers"),
                   operations=data.get("operations"), questions=data.get("questions", []))


def _file_hash(path: Path | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def run_eval(
    app: Spravka,
    items: Sequence[GoldenItem],
    *,
    collection: str,
    golden_path: Path | None = None,
    answers: bool = True,
    mode: str | None = None,
    search_mode: str = "hybrid",
    judge: Callable[[AnswerRecord], float | None] | None = None,
    progress: Callable[[], None] | None = None,
) -> EvalRun:
    app.check_collection(collection)
    aliases = {d.id: d.duplicate_of for d in app.store.list_documents(collection, DocStatus.DUPLICATE)
               if d.duplicate_of}
    app.embedder.embed_query("прогрев модели")  # load the model before anything is timed
    retrieval_rows = []
    records: list[AnswerRecord] = []
    rows: list[dict[str, Any]] = []
    for item in items:
        flt = parse_filters(item.filters, item.groups)
        row: dict[str, Any] = {"id": item.id, "question": item.question, "should_refuse": item.should_refuse,
                               "expected_sources": item.expected_sources, "synthetic": item.synthetic}
        t = time.perf_counter()
        result = app.searcher.search(item.question, collection=collection, flt=flt, k=30, mode=search_mode)
        search_ms = (time.perf_counter() - t) * 1000
        ranked, merged = hit_ranking(result.hits, aliases)
        row["retrieved"] = [{"doc_id": h.doc_id, "chunk_id": h.chunk_id, "score": round(h.score, 3),
                             "heading": h.heading} for h in result.hits[:5]]
        if item.answerable:
            q = score_question(item, ranked, search_ms, merged)
            retrieval_rows.append(q)
            row["first_rank"] = q.first_rank
        if answers:
            a = app.answer(item.question, collection=collection, flt=flt, mode=mode)
            rec = AnswerRecord(
                id=item.id, question=item.question, should_refuse=item.should_refuse,
                expected_sources=item.expected_sources, status=str(a.status), confidence=round(a.confidence, 4),
                text=a.text, mode=a.mode, cited_docs=[c.doc_id for c in a.citations],
                cited_text=_cited_text(a), reference_answer=item.reference_answer,
                timings_ms=dict(a.timings_ms), tokens=dict(a.tokens), cost=a.cost, retrieved_docs=ranked[:5],
                notes=list(a.notes),
            )
            score_answer(rec, aliases, embed=lambda texts: app.embedder.embed_passages(list(texts)))
            if judge is not None and not rec.refused and rec.reference_answer:
                rec.judge = judge(rec)
            records.append(rec)
            row["answer"] = {k: v for k, v in asdict(rec).items()
                             if k not in ("id", "question", "should_refuse", "expected_sources", "cited_text")}
        rows.append(row)
        if progress:
            progress()
    meta = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "spravka": __version__,
        "collection": collection,
        "golden": str(golden_path) if golden_path else None,
        "golden_sha": _file_hash(golden_path),
        "questions": len(items),
        "embedder": app.embedder.name,
        "search": app.settings.search.model_dump(),
        "chunking": app.settings.chunking.model_dump(),
        "answer_mode": mode or getattr(getattr(app.settings, "answer", None), "mode", None),
        "llm_model": getattr(app.settings.llm, "local_model", None) if answers else None,
        "threshold": _threshold(app, collection),
    }
    return EvalRun(
        meta=meta,
        retrieval=summarize(retrieval_rows),
        answers=summarize_answers(records) if answers else None,
        operations=summarize_operations(records) if answers else None,
        questions=rows,
    )


def _cited_text(answer) -> str:
    """The full text of the cited chunks (a snippet is shortened; groundedness needs it all)."""
    by_chunk = {h.chunk_id: h.text for h in answer.hits}
    return "\n".join(by_chunk.get(c.chunk_id, c.snippet) for c in answer.citations)


def _threshold(app: Spravka, collection: str) -> float:
    value = app.store.collection_settings(collection).get("answer_threshold")
    return app.settings.answer.threshold if value is None else float(value)
