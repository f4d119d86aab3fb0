"""Scoring text generation against a golden set: inputs, and what each text must and must not say.

Golden file (JSONL), one case a line::

    {"id": "d1", "template": "delay_notice", "inputs": {"customer_name": "Анна", "order_id": "77-2051",
     "new_date": "2026-12-03"}, "must_include": ["77-2051", "3 декабря"], "must_not_include": ["скидк"],
     "reference": "optional: a text a person would send", "tone": "optional", "groups": ["optional"]}

``template`` is a built-in name or a path (relative to the golden file); ``groups`` are the
asker's access groups for a template that reads the knowledge base (none: a public asker).

A text is **right** when it mentions every ``must_include`` phrase (a date in any spelling, the
same numbers, other word forms: :func:`spravka.generate.checks.mentions`) and none of
``must_not_include``. Beside that share, the report says how the output checks did as a gate
(the share they send to a person, how many wrong texts they catch, how many right ones they flag
for nothing), how often each issue comes up, attempts, seconds, and, where a case has a
``reference``, the mean e5 similarity of text and reference. Nothing is queued or delivered.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spravka.core.errors import InputError, SpravkaError
from spravka.evaluate.extraction import review_rates
from spravka.evaluate.golden import jsonl_lines
from spravka.generate.checks import mentions


@dataclass
class TextCase:
    id: str
    template: str
    inputs: dict[str, Any]
    must_include: list[str] = field(default_factory=list)
    must_not_include: list[str] = field(default_factory=list)
    reference: str | None = None
    tone: str | None = None
    groups: list[str] | None = None


@dataclass
class TextResult:
    id: str
    template: str
    status: str
    right: bool
    missing: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    attempts: int = 0
    seconds: float = 0.0
    similarity: float | None = None
    text: str = ""
    error: str | None = None

    @property
    def why(self) -> str:
        """Why the text is wrong (its error, what it lacks, what it says that it must not), or ''."""
        return "; ".join(filter(None, [self.error, "lacks: " + ", ".join(self.missing) if self.missing else "",
                                       "says: " + ", ".join(self.forbidden) if self.forbidden else ""]))


def load_text_cases(path: Path) -> list[TextCase]:
    cases = []
    for n, row in jsonl_lines(path, "golden file"):
        try:
            template = str(row["template"])
            if template.endswith((".yaml", ".yml")):
                template = str((path.parent / template).resolve())
            cases.append(TextCase(
                id=str(row.get("id") or n), template=template, inputs=dict(row["inputs"]),
                must_include=[str(x) for x in row.get("must_include") or []],
                must_not_include=[str(x) for x in row.get("must_not_include") or []],
                reference=row.get("reference") or None, tone=row.get("tone") or None,
                groups=[str(g) for g in row["groups"]] if row.get("groups") is not None else None))
        except (ValueError, KeyError, TypeError) as e:  # inputs that are not a mapping, no template
            raise InputError(f"{path}:{n}: a line needs template and inputs ({e})") from None
        if not cases[-1].must_include and not cases[-1].must_not_include:
            raise InputError(f"{path}:{n}: say what the text must_include or must_not_include, or there is "
                             "nothing to score")
    if not cases:
        raise InputError(f"{path} has no cases")
    return cases


def score_text(text: str, case: TextCase) -> tuple[list[str], list[str]]:
    """(must_include phrases the text lacks, must_not_include phrases it has)."""
    return ([p for p in case.must_include if not mentions(text, p)],
            [p for p in case.must_not_include if mentions(text, p)])


def evaluate_texts(cases: Sequence[TextCase], generate: Callable[[TextCase], Any], *,
                   embed: Callable[[list[str]], np.ndarray] | None = None,
                   progress: Callable[[], None] | None = None) -> tuple[dict[str, Any], list[TextResult]]:
    """``generate(case)`` returns a ``GenerationResult`` (run with review and delivery off). A case
    whose generation fails (bad inputs, a dead server) is a wrong text with its error; the rest go on."""
    results: list[TextResult] = []
    for case in cases:
        t = time.perf_counter()
        try:
            r = generate(case)
        except SpravkaError as e:
            results.append(TextResult(case.id, case.template, "failed", False, error=e.message,
                                      seconds=round(time.perf_counter() - t, 2)))
        else:
            missing, forbidden = score_text(r.text, case)
            results.append(TextResult(case.id, r.template, r.status, not missing and not forbidden, missing,
                                      forbidden, [i.kind for i in r.issues], r.attempts,
                                      round(time.perf_counter() - t, 2), text=r.text))
        if progress:
            progress()
    pairs = [(i, c.reference) for i, c in enumerate(cases) if c.reference and results[i].text]
    if embed is not None and pairs:
        vecs = np.asarray(embed([results[i].text for i, _ in pairs] + [ref for _, ref in pairs]), dtype=np.float32)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        for k, (i, _) in enumerate(pairs):
            results[i].similarity = round(float(vecs[k] @ vecs[len(pairs) + k]), 4)
    return summarize(results), results


def summarize(results: Sequence[TextResult]) -> dict[str, Any]:
    n = len(results)
    done = [r for r in results if r.status != "failed"]
    kinds = Counter(k for r in done for k in set(r.issues))
    secs = sorted(r.seconds for r in done)
    sims = [r.similarity for r in results if r.similarity is not None]
    return {
        "n": n,
        "right": round(sum(r.right for r in results) / n, 4) if n else 0.0,
        "accepted": round(sum(r.status == "ok" for r in results) / n, 4) if n else 0.0,
        **review_rates([(r.right, r.status != "ok") for r in results]),
        "failed": n - len(done),
        "issues": {k: round(v / len(done), 4) for k, v in kinds.most_common()} if done else {},
        "attempts": round(statistics.mean(r.attempts for r in done), 2) if done else 0.0,
        "p50_s": round(secs[len(secs) // 2], 2) if secs else 0.0,
        "p95_s": round(secs[min(len(secs) - 1, int(len(secs) * 0.95))], 2) if secs else 0.0,
        "similarity": round(statistics.mean(sims), 4) if sims else None,
        "templates": dict(Counter(r.template for r in results)),
    }


def render_texts(summary: dict[str, Any], results: Sequence[TextResult], *, title: str, meta: str = "") -> str:
    """A self-contained HTML report: the gate's figures, issues by kind, then every text (wrong first)."""
    from html import escape

    from spravka.evaluate.charts import bar_chart
    from spravka.evaluate.report import cards, page

    charts = [bar_chart([(k.replace("_", " "), float(summary.get(k) or 0.0)) for k in (
        "right", "accepted", "flagged", "wrong_caught", "right_flagged")], title="Texts and the checks", max_value=1.0),
        bar_chart(list(summary["issues"].items())[:10] or [("none", 0.0)], title="Issues (share of texts)",
                  max_value=1.0, colour="#d97706")]
    rows = []
    for r in sorted(results, key=lambda r: (r.right, r.id)):
        rows.append(f'<tr class="{"ok" if r.right else "fail"}"><td>{escape(r.id)}</td><td>{escape(r.template)}</td>'
                    f'<td>{escape(r.status)}</td><td>{escape(r.why)}</td><td>{escape(", ".join(r.issues))}</td>'
                    f'<td class="small">{escape(r.text)}</td></tr>')
    body = (f'<div class="charts">{"".join(charts)}</div>' + cards("Texts", summary)
            + "<h2>Texts (wrong first)</h2><table><tr><th>id</th><th>template</th><th>status</th><th>wrong "
            "because</th><th>issues</th><th>text</th></tr>" + "".join(rows) + "</table>")
    return page(title, meta, body)


def to_json(summary: dict[str, Any], results: Sequence[TextResult] | None = None) -> dict[str, Any]:
    return summary | ({"texts": [asdict(r) for r in results]} if results is not None else {})
