"""Offline evaluation: fit on a training file, classify a test file, score.

The model is fitted exactly as ``retrain`` fits it (same members, same out-of-fold calibration)
but in memory: the data directory's examples and model are not touched. Only the embedding
cache is shared, so a second run over the same files embeds nothing.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from spravka.classify import metrics
from spravka.classify.engine import Engine, ExampleIndex
from spravka.classify.taxonomy import Taxonomy
from spravka.core.errors import InputError
from spravka.core.settings import ClassifySettings


def load_labelled(path: Path, text_column: str = "text", label_column: str = "label") -> list[tuple[str, str]]:
    """(text, label) pairs from JSONL (``{"text", "label"}``) or CSV (named columns)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    rows: list[dict[str, Any]]
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    raise InputError(f"{path}:{n}: not JSON: {e}") from e
    else:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
    out = []
    for n, r in enumerate(rows, 1):
        if text_column not in r or label_column not in r:
            raise InputError(f"{path}: row {n} has no '{text_column}' or '{label_column}'",
                             hint="name the columns with --text-column and --label-column")
        text, label = str(r[text_column] or "").strip(), str(r[label_column] or "").strip()
        if text and label:
            out.append((text, label))
    if not out:
        raise InputError(f"{path} has no labelled rows")
    return out


def evaluate(embedder, settings: ClassifySettings, train: list[tuple[str, str]], test: list[tuple[str, str]], *,
             taxonomy: Taxonomy | None = None, method: str | None = None, llm: Callable[[], Any] | None = None,
             llm_available: Callable[[], bool] | None = None, members: bool = False,
             progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    labels = list(dict.fromkeys([lab for _, lab in train] + [lab for _, lab in test]))
    if taxonomy is None or not set(labels) <= set(taxonomy.labels):
        taxonomy = Taxonomy.from_labels(sorted(labels))
    t0 = time.perf_counter()
    index = ExampleIndex.build(embedder, taxonomy, train, settings.k, settings.knn_temperature,
                               progress=(lambda n: progress("embed train", n, len(train))) if progress else None)
    t1 = time.perf_counter()
    engine = Engine(taxonomy, embedder, settings, index, llm=llm, llm_available=llm_available,
                    fit=(method or settings.method) != "knn")
    t2 = time.perf_counter()
    done = [0]

    def step(n: int) -> None:
        done[0] += n
        if progress:
            progress("classify test", done[0], len(test))

    results = engine.classify_many([t for t, _ in test], method=method, progress=step)
    gold = [lab for _, lab in test]
    pred = [c.leaf for c in results]
    conf = [c.leaf_confidence for c in results]
    out = metrics.report(gold, pred, conf, settings.threshold)
    # what would be routed without a person: confident and not out of scope
    auto = [i for i, c in enumerate(results) if not c.needs_review]
    out["coverage"] = round(len(auto) / len(results), 4) if results else 0.0
    out["accuracy_covered"] = round(metrics.accuracy([gold[i] for i in auto], [pred[i] for i in auto]), 4)
    out["novel"] = round(sum(c.novel for c in results) / max(1, len(results)), 4)
    fit = engine.model.report
    out["train"] = len(train)
    out["method"] = method or settings.method
    out["fit"] = asdict(fit) if fit else None
    out["llm_calls"] = engine.llm_calls
    out["seconds"] = {"embed_train": round(t1 - t0, 1), "fit": round(t2 - t1, 1),
                      "classify": round(time.perf_counter() - t2, 1)}
    if members and len(engine.model.members) > 1:
        from spravka.classify.engine import prepare
        from spravka.classify.features import embed_texts

        prepared = [prepare(t) for t, _ in test]
        _, probs = engine.model.predict(prepared, embed_texts(embedder, prepared), index.knn)
        out["members"] = {}
        for name, p in probs.items():
            got = [taxonomy.labels[j] for j in p.argmax(axis=1)]
            out["members"][name] = {"accuracy": round(metrics.accuracy(gold, got), 4),
                                    "macro_f1": round(metrics.macro_f1(gold, got), 4)}
    out["predictions"] = [{"text": c.text, "gold": g, "label": c.leaf, "confidence": c.leaf_confidence,
                           "needs_review": c.needs_review}
                          for c, g in zip(results, gold, strict=True)]
    return out
