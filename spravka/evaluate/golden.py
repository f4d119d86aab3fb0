"""Golden sets: JSONL, one question per line, written by hand or exported from the query log.

``{"id", "question", "expected_sources": [document ids], "filters": {...}, "groups": [...],
"reference_answer": "...", "should_refuse": false}``
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spravka.core.errors import InputError


@dataclass(slots=True)
class GoldenItem:
    id: str
    question: str
    expected_sources: list[str] = field(default_factory=list)
    filters: dict[str, Any] | None = None
    groups: list[str] | None = None
    reference_answer: str | None = None
    should_refuse: bool = False
    synthetic: bool = False

    @property
    def answerable(self) -> bool:
        return not self.should_refuse and bool(self.expected_sources)


def jsonl_lines(path: Path, what: str = "golden set") -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line; a missing file, bad JSON or a line that
    is not an object is an ``InputError`` naming the line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path.name}, line {n}: invalid JSON ({e.msg})") from e
        if not isinstance(obj, dict):
            raise InputError(f"{path.name}, line {n}: a line is one JSON object")
        yield n, obj


def load_golden(path: Path) -> list[GoldenItem]:
    items: list[GoldenItem] = []
    for n, obj in jsonl_lines(path):
        if not str(obj.get("question") or "").strip():
            raise InputError(f"{Path(path).name}, line {n}: a golden item needs a 'question'")
        sources = obj.get("expected_sources") or []
        if isinstance(sources, str):
            sources = [sources]
        items.append(GoldenItem(
            id=str(obj.get("id") or f"q{n}"), question=str(obj["question"]),
            expected_sources=[str(s) for s in sources], filters=obj.get("filters") or None,
            groups=obj.get("groups"), reference_answer=obj.get("reference_answer"),
            should_refuse=bool(obj.get("should_refuse", False)), synthetic=bool(obj.get("synthetic", False)),
        ))
    if not items:
        raise InputError(f"golden set {path} is empty")
    return items
