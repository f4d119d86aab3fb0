"""The answer cache on a replay of real support traffic: RUTUBE dev questions against the RUTUBE
FAQ collection (built as bench/faq_retrieval.py builds it, in the same home).

Traffic: intents (gold FAQ ids) are drawn Zipf-distributed (s = 1.1); inside an intent, 70% of
requests repeat its most common wording (with surface variants: case, punctuation, a greeting)
and 30% are any of the intent's user questions (paraphrases: different people asking the same
thing). Answers are extractive (the LLM is slow on 2 cores); the LLM calls a generative
deployment would make are counted: one per answered question that is not served from the cache.

Figures: p50/p95 latency and pipelines/LLM calls saved with the cache off (baseline), exact
only, and exact + semantic; and, for the semantic match, a sweep of thresholds where each
semantic hit's served answer is compared with the answer the pipeline would have given
(``disagree``: another top source) and with the gold FAQ id.

    python -m bench.cache [--requests 2000] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, make_app, markdown_table, read_jsonl, save_result, shared_data
from bench.faq_retrieval import build_kb
from spravka.core.filters import Filter
from spravka.core.text.normalize import cache_key_text, normalize_query

HOME = RESULTS / "home-rutube-e5"
THRESHOLDS = (0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98)
GREETINGS = ("", "", "Здравствуйте! ", "Добрый день. ", "привет ")
PUBLIC = Filter(groups=("public",))


def replay(cases: list[dict[str, Any]], n: int, seed: int, s: float = 1.1, p_canonical: float = 0.7) -> list[dict]:
    rng = random.Random(seed)
    intents: dict[tuple[str, ...], list[dict]] = defaultdict(list)
    for c in cases:
        intents[tuple(sorted(str(g) for g in c["gold_faq_ids"]))].append(c)
    keys = sorted(intents)
    rng.shuffle(keys)
    weights = [1 / (r + 1) ** s for r in range(len(keys))]
    out = []
    for key in rng.choices(keys, weights, k=n):
        group = intents[key]
        case = group[0] if rng.random() < p_canonical else rng.choice(group)
        q = case["user_question"]
        v = rng.random()
        if v < 0.2:
            q = q.lower()
        elif v < 0.3:
            q = q.rstrip("?.! ") + "??"
        q = rng.choice(GREETINGS) + q
        out.append({"question": q, "case": case["case_id"], "gold": set(key)})
    return out


def _app(cache: dict[str, Any] | None):
    return make_app(HOME, embedder={"provider": "e5"}, collection="rutube", answer={"mode": "extractive"},
                    cache=cache or {"enabled": False})


def ensure_kb(data: Path) -> dict:
    app = _app(None)
    with tempfile.TemporaryDirectory() as tmp:
        kb = build_kb(data, Path(tmp) / "kb")
        report = app.ingest(kb.parent, "rutube", prune=True)
    app.close()
    return {"chunks": report.chunks, "added": report.added, "unchanged": report.unchanged}


def fresh_answers(cases: list[dict]) -> dict[int, dict]:
    """What the pipeline answers to each distinct dev question (no cache)."""
    app = _app(None)
    out = {}
    for c in cases:
        a = app.answer(c["user_question"], flt=PUBLIC, use_cache=False)
        out[c["case_id"]] = {"status": str(a.status), "top": a.citations[0].doc_id if a.citations else None,
                             "docs": {x.doc_id for x in a.citations}}
    app.close()
    return out


def run_replay(stream: list[dict], cache: dict[str, Any] | None) -> dict[str, Any]:
    app = _app(cache)
    if app.cache is not None:
        app.cache.clear("rutube")
    app.answer("прогрев", flt=PUBLIC, use_cache=False)
    lat, answered, misses_answered, hits, sem = [], 0, 0, 0, 0
    for r in stream:
        t = time.perf_counter()
        a = app.answer(r["question"], flt=PUBLIC)
        lat.append((time.perf_counter() - t) * 1000)
        ok = str(a.status) == "answered"
        answered += ok
        hit = a.cache.get("result") == "hit"
        hits += hit
        sem += hit and a.cache.get("match") == "semantic"
        misses_answered += ok and not hit
    app.close()
    n = len(stream)
    return {"requests": n, "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p95_ms": round(float(np.percentile(lat, 95)), 2), "mean_ms": round(float(np.mean(lat)), 2),
            "hit_rate": round(hits / n, 4), "semantic_hits": sem, "answered": answered,
            # a generative deployment calls the LLM once per answered question the cache did not serve
            "llm_calls": misses_answered, "pipelines_run": n - hits}


def semantic_sweep(stream: list[dict], fresh: dict[int, dict], vectors: dict[int, np.ndarray]) -> list[dict]:
    """Simulate exact + semantic lookups over the stream for each threshold; a semantic hit serves
    the answer given to the cached question."""
    rows = []
    for t in THRESHOLDS:
        exact: dict[str, int] = {}
        stored: list[int] = []  # case ids whose answers are cached, in order
        sem_hits = disagree = gold_served = gold_fresh = 0
        for r in stream:
            cid = r["case"]
            key = cache_key_text(r["question"])
            if key in exact:
                continue
            if stored:
                m = np.stack([vectors[c] for c in stored]) @ vectors[cid]
                best = int(np.argmax(m))
                if m[best] >= t:
                    served = fresh[stored[best]]
                    sem_hits += 1
                    disagree += served["top"] != fresh[cid]["top"]
                    gold_served += bool(served["docs"] & r["gold"])
                    gold_fresh += bool(fresh[cid]["docs"] & r["gold"])
                    continue
            if fresh[cid]["status"] == "answered":
                exact[key] = cid
                if cid not in stored:
                    stored.append(cid)
        rows.append({"threshold": t, "semantic_hits": sem_hits,
                     "semantic_hit_rate": round(sem_hits / len(stream), 4),
                     "disagree": round(disagree / sem_hits, 4) if sem_hits else 0.0,
                     "gold_served": round(gold_served / sem_hits, 4) if sem_hits else 0.0,
                     "gold_fresh": round(gold_fresh / sem_hits, 4) if sem_hits else 0.0})
    return rows


def safe_threshold(sweep: list[dict], max_disagree: float = 0.01) -> float | None:
    """The lowest threshold whose semantic hits serve another top source at most 1% of the time
    and are not less often right than fresh answers."""
    for row in sweep:
        if row["semantic_hits"] >= 5 and row["disagree"] <= max_disagree and row["gold_served"] >= row["gold_fresh"]:
            return row["threshold"]
    return None


def run(requests: int, seed: int) -> dict[str, Any]:
    data = shared_data() / "rutube-support-faq"
    cases = read_jsonl(data / "cases.dev.jsonl")
    kb = ensure_kb(data)
    stream = replay(cases, requests, seed)
    fresh = fresh_answers(cases)
    app = _app(None)
    vecs = app.embedder.embed_queries([normalize_query(c["user_question"]) for c in cases])
    app.close()
    vectors = {c["case_id"]: v for c, v in zip(cases, vecs, strict=True)}
    sweep = semantic_sweep(stream, fresh, vectors)
    safe = safe_threshold(sweep)
    configs = [("cache off (baseline)", None), ("exact", {"enabled": True})]
    sem_t = safe if safe is not None else max(THRESHOLDS)
    configs.append((f"exact + semantic {sem_t}", {"enabled": True, "semantic_threshold": sem_t}))
    rows = [{"config": name, **run_replay(stream, cache)} for name, cache in configs]
    base = rows[0]
    for r in rows:
        r["llm_calls_saved"] = base["llm_calls"] - r["llm_calls"]
        r["pipelines_saved"] = base["pipelines_run"] - r["pipelines_run"]
    return {"dataset": "rutube-support-faq/dev", "questions": len(cases), "requests": requests, "seed": seed,
            "distinct_in_stream": len({cache_key_text(r["question"]) for r in stream}), "kb": kb,
            "replays": rows, "semantic_sweep": sweep, "safe_semantic_threshold": safe}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    r = run(args.requests, args.seed)
    print(f"\nAnswer cache on {r['requests']} replayed RUTUBE requests ({r['distinct_in_stream']} distinct after "
          f"normalisation, {r['questions']} dev questions), extractive answers\n")
    print(markdown_table(r["replays"], ["config", "p50_ms", "p95_ms", "mean_ms", "hit_rate", "semantic_hits",
                                        "answered", "llm_calls", "llm_calls_saved", "pipelines_saved"]))
    print("\nSemantic match: served answer vs the pipeline's own answer (disagree = another top source)\n")
    print(markdown_table(r["semantic_sweep"], ["threshold", "semantic_hits", "semantic_hit_rate", "disagree",
                                               "gold_served", "gold_fresh"]))
    print(f"\nsafe semantic threshold (<= 1% disagreement, no loss of accuracy): {r['safe_semantic_threshold']}")
    print("saved", save_result("cache", r))


def suite(quick: bool = False) -> list[dict]:
    r = run(600 if quick else 2000, 7)
    rows = {x["config"]: x for x in r["replays"]}
    base, exact = rows["cache off (baseline)"], rows["exact"]
    bench = f"cache (RUTUBE replay, {r['requests']} requests)"
    return [
        {"bench": bench, "metric": "p50 latency ms (exact cache)", "value": exact["p50_ms"],
         "baseline": "cache off", "baseline_value": base["p50_ms"], "target": ""},
        {"bench": bench, "metric": "hit rate (exact)", "value": exact["hit_rate"], "baseline": "cache off",
         "baseline_value": 0.0, "target": ""},
        {"bench": bench, "metric": "generative LLM calls saved", "value": exact["llm_calls_saved"],
         "baseline": "calls without cache", "baseline_value": base["llm_calls"], "target": ""},
        {"bench": bench, "metric": "safe semantic threshold", "value": r["safe_semantic_threshold"] or "none",
         "baseline": "", "baseline_value": "", "target": "<= 1% disagreement"},
    ]


if __name__ == "__main__":
    main()
