"""Scoring structured extraction against a golden set of documents with their true records.

Golden file (JSONL), one document a line, paths relative to the golden file::

    {"file": "invoices/0001.pdf", "schema": "invoice", "expected": {"number": "ТС-1482", "total": 41365.0}}

Only the fields in ``expected`` are scored (label what matters). A field matches when it is equal
with whitespace and case ignored (strings), to the kopeck (numbers), as the same day (dates, in
any spelling), or row by row (lists). Besides accuracy per field and per record, the report
says how the checks did: the share of records they send to review, how many of the wrong records
they catch, and how many right ones they flag for nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from spravka.core.errors import InputError
from spravka.evaluate.golden import jsonl_lines
from spravka.extract.checks import numbers_in, parse_date
from spravka.extract.schema import FieldSpec, Schema, load_schema


@dataclass
class ExtractionCase:
    file: Path
    schema: str
    expected: dict[str, Any]


@dataclass
class CaseResult:
    file: str
    schema: str
    status: str
    fields: dict[str, bool] = field(default_factory=dict)
    got: dict[str, Any] = field(default_factory=dict)
    issues: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None

    @property
    def right(self) -> bool:
        return self.status != "failed" and all(self.fields.values())


def load_cases(path: Path) -> list[ExtractionCase]:
    cases = []
    for n, row in jsonl_lines(path, "golden file"):
        try:
            cases.append(ExtractionCase(path.parent / row["file"], str(row["schema"]), dict(row["expected"])))
        except (KeyError, TypeError) as e:
            raise InputError(f"{path}:{n}: a line needs file, schema and expected ({e})") from None
    if not cases:
        raise InputError(f"{path} has no cases")
    return cases


def _numbers(v: Any) -> set[Decimal]:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return {Decimal(str(v)).quantize(Decimal("0.01"))}
    return numbers_in(str(v))


def _norm(v: Any) -> str:
    return re.sub(r"\s+", "", str(v)).casefold()


def field_match(spec: FieldSpec | None, got: Any, gold: Any) -> bool:
    if gold is None or gold == "" or gold == []:
        return got is None or got == "" or got == []
    if got is None:
        return False
    kind = spec.type if spec else "string"
    if kind == "list":
        if not isinstance(got, list) or not isinstance(gold, list) or len(got) != len(gold):
            return False
        subs = (spec.fields if spec else None) or {}
        return all(field_match(subs.get(k), (g or {}).get(k), v) for g, row in zip(got, gold, strict=True)
                   for k, v in (row or {}).items())
    if kind in ("number", "integer"):  # gold may be written as printed: «RM 3.90», «41 365,00»
        return bool(_numbers(got) & _numbers(gold))
    if kind == "date":
        g = parse_date(str(gold))
        return g is not None and g == parse_date(str(got))
    if kind == "boolean":
        return bool(got) == bool(gold)
    return _norm(got).rstrip(".") == _norm(gold).rstrip(".")


def score_case(schema: Schema, got: dict[str, Any] | None, expected: dict[str, Any]) -> dict[str, bool]:
    got = got or {}
    return {k: field_match(schema.spec.fields.get(k), got.get(k), v) for k, v in expected.items()}


def evaluate_extraction(cases: list[ExtractionCase], extract: Callable[[Path, Schema], Any],
                        progress: Callable[[], None] | None = None) -> tuple[dict[str, Any], list[CaseResult]]:
    """``extract(path, schema)`` returns an ``ExtractionResult`` (run without review items)."""
    results: list[CaseResult] = []
    per_field: dict[str, list[bool]] = {}
    for case in cases:
        schema = load_schema(case.schema)
        r = extract(case.file, schema)
        fields = score_case(schema, r.data, case.expected) if r.status != "failed" else dict.fromkeys(case.expected, False)
        for k, ok in fields.items():
            per_field.setdefault(k, []).append(ok)
        results.append(CaseResult(str(case.file), schema.name, r.status, fields, r.data or {},
                                  [i.to_dict() for i in r.issues], r.error))
        if progress:
            progress()
    n = len(results)
    summary = {
        "n": n,
        "records_right": round(sum(r.right for r in results) / n, 4),
        "fields": {k: round(sum(v) / len(v), 4) for k, v in sorted(per_field.items())},
        "failed": sum(r.status == "failed" for r in results),
        **review_rates([(r.right, r.status != "ok") for r in results]),
    }
    return summary, results


def review_rates(records: list[tuple[bool, bool]]) -> dict[str, float]:
    """From (right, flagged) per record: the share flagged, of the wrong records how many a person
    would have seen before they went out, and of the right ones how many were flagged for nothing."""
    wrong = [flagged for right, flagged in records if not right]
    right = [flagged for ok, flagged in records if ok]
    return {"flagged": round(sum(f for _, f in records) / len(records), 4) if records else 0.0,
            "wrong_caught": round(sum(wrong) / len(wrong), 4) if wrong else 1.0,
            "right_flagged": round(sum(right) / len(right), 4) if right else 0.0}
