"""Helpers shared by the benchmarks: locating ../shared/data, building apps, printing tables."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def shared_data() -> Path:
    """``../shared/data`` beside the checkout (or ``SPRAVKA_SHARED_DATA``)."""
    env = os.environ.get("SPRAVKA_SHARED_DATA")
    for candidate in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data"]:
        if candidate.is_dir():
            return candidate
    sys.exit("benchmark data not found: put ../shared/data beside the checkout or set SPRAVKA_SHARED_DATA")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def make_app(home: Path, **overrides: Any):
    from spravka.app import Spravka
    from spravka.core.settings import Settings

    return Spravka(Settings(home=home, **overrides))


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def save_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2))
    return path
