"""What an operator does with a cluster: golden-set items and a KB entry draft."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Any

import yaml

from spravka.evaluate.building import append_jsonl, log_candidates

GOLDEN_FILE = Path("golden") / "candidates.jsonl"
DRAFTS_DIR = "drafts"


def add_to_golden(store: Any, home: Path, answer_ids: list[str], *, limit: int = 200_000) -> tuple[Path, int]:
    """Append the cluster's questions (one per distinct question) as unlabelled golden-set
    candidates to ``$SPRAVKA_HOME/golden/candidates.jsonl``; returns the file and how many were new."""
    wanted = set(answer_ids)
    answers = [e for e in store.events(kind="answer", limit=limit) if e.get("answer_id") in wanted]
    feedback = [e for e in store.events(kind="feedback", limit=limit) if e.get("answer_id") in wanted]
    path = Path(home) / GOLDEN_FILE
    return path, append_jsonl(path, log_candidates(answers, feedback))


def _slug(text: str) -> str:
    from spravka.core.text.normalize import cache_key_text

    words = cache_key_text(text).split()[:8]
    return "-".join(words)[:60] or "draft"


def draft_kb_entry(home: Path, question: str, *, answer: str | None = None, examples: list[str] | None = None,
                   collection: str | None = None, source: str | None = None, by: str | None = None) -> Path:
    """A Markdown draft in ``$SPRAVKA_HOME/drafts/``: front matter, the question as the title, the
    operator's answer (or a placeholder to write one) and the ways users asked it. An editor
    reviews it and moves it into the knowledge base folder."""
    folder = Path(home) / DRAFTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(question.encode()).hexdigest()[:8]
    path = folder / f"{_slug(question)}-{digest}.md"
    meta = {"title": question.strip()[:200], "status": "draft", "collection": collection,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "source": source, "author": by}
    body = (answer or "").strip() or "_Ответ ещё не написан: впишите его сюда и уберите эту строку._"
    asked = "".join(f"- {q.replace('--', '—')}\n" for q in dict.fromkeys(examples or []) if q.strip())
    front = yaml.safe_dump({k: v for k, v in meta.items() if v}, allow_unicode=True, sort_keys=False)
    heading = " ".join(re.sub(r"#", " ", question).split())
    text = f"---\n{front}---\n\n# {heading}\n\n{body}\n"
    if asked:
        text += f"\n<!-- Как спрашивали пользователи:\n{asked}-->\n"
    path.write_text(text, encoding="utf-8")
    return path
