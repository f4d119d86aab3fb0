"""JSONL and CSV. Record files yield one document per record; a CSV table is one document.

JSONL record: ``{"id": ..., "text": ..., "title": optional, any other field → metadata}``.
A bad line fails alone, with its line number; the other records load.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from spravka.core.errors import LoaderError
from spravka.core.types import Section
from spravka.ingest.loaders.base import LoadResult, RawDoc, read_text, register

_TEXT_KEYS = ("text", "answer", "ответ", "content", "body")
_TITLE_KEYS = ("title", "question", "вопрос", "name", "заголовок")
_ID_KEYS = ("id", "doc_id", "faq_id")


def _record(obj: dict[str, Any], where: str) -> RawDoc:
    lowered = {str(k).lower(): k for k in obj}
    id_key = next((lowered[k] for k in _ID_KEYS if k in lowered), None)
    text_key = next((lowered[k] for k in _TEXT_KEYS if k in lowered), None)
    if id_key is None or obj.get(id_key) in (None, ""):
        raise LoaderError(f"{where}: the record has no 'id'", reason="bad_record")
    if text_key is None or not str(obj.get(text_key) or "").strip():
        raise LoaderError(f"{where}: the record has no 'text'", reason="bad_record")
    title_key = next((lowered[k] for k in _TITLE_KEYS if k in lowered and lowered[k] != text_key), None)
    meta = {k: v for k, v in obj.items() if k not in (id_key, text_key, title_key)}
    return RawDoc(
        id=str(obj[id_key]).strip(),
        title=str(obj.get(title_key) or "").strip() if title_key else "",
        sections=[Section(text=str(obj[text_key]))],
        metadata=meta,
    )


@register("jsonl", ".jsonl", ".ndjson")
def load_jsonl(path: Path) -> LoadResult:
    text, enc = read_text(path)
    docs: list[RawDoc] = []
    failures: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            failures.append((where, "bad_record", f"{where}: invalid JSON: {e.msg}"))
            continue
        if not isinstance(obj, dict):
            failures.append((where, "bad_record", f"{where}: a record must be a JSON object"))
            continue
        try:
            doc = _record(obj, where)
        except LoaderError as e:
            failures.append((where, e.reason, e.message))
            continue
        if doc.id in seen:
            failures.append((doc.id, "duplicate_id", f"{where}: id '{doc.id}' appears twice in the file"))
            continue
        seen.add(doc.id or "")
        docs.append(doc)
    if not docs and failures:
        raise LoaderError(f"no valid records; first problem: {failures[0][2]}", reason="bad_record")
    return LoadResult(docs, failures, info={"encoding": enc, "records": len(docs)})


@register("csv", ".csv", ".tsv")
def load_csv(path: Path) -> LoadResult:
    text, enc = read_text(path)
    sample = text[:8192]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    if not reader.fieldnames or not any(f and f.strip() for f in reader.fieldnames):
        raise LoaderError("the CSV has no header row", reason="corrupt")
    fields = [f.strip() if f else "" for f in reader.fieldnames]
    reader.fieldnames = fields
    lowered = {f.lower() for f in fields}
    rows = list(reader)
    if any(k in lowered for k in _TEXT_KEYS) and any(k in lowered for k in _ID_KEYS):
        docs, failures = [], []
        for n, row in enumerate(rows, start=2):
            try:
                docs.append(_record({k: v for k, v in row.items() if k}, f"row {n}"))
            except LoaderError as e:
                failures.append((f"row {n}", e.reason, e.message))
        return LoadResult(docs, failures, info={"encoding": enc, "records": len(docs)})
    # A table: each row becomes one self-describing line ("Зона: Москва; Срок: 1 день").
    lines = []
    for row in rows:
        cells = [f"{k}: {v.strip()}" for k, v in row.items() if k and v and str(v).strip()]
        if cells:
            lines.append("; ".join(cells) + ".")
    return LoadResult([RawDoc(sections=[Section(text="\n".join(lines))])], info={"encoding": enc, "rows": len(rows)})
