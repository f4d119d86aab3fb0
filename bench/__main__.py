"""``python -m bench`` (or ``make bench``): every benchmark, one summary table.

Each benchmark module exposes ``suite(quick) -> rows``; a row is one figure with the baseline
measured in the same run. The summary is printed and written to ``bench/results/summary.md`` and
``summary.json``. ``--quick`` shrinks the slow ones; ``--only a,b`` picks modules.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
import traceback

from bench.common import RESULTS, markdown_table

MODULES = ["faq_retrieval", "scale", "answers", "service_load", "scale_backends", "classify", "cache", "extract_sroie", "generate_checks"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    wanted = [m for m in args.only.split(",") if m] or MODULES
    rows, problems = [], []
    for name in wanted:
        try:
            mod = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError:
            continue
        if not hasattr(mod, "suite"):
            problems.append(f"{name}: no suite()")
            continue
        t = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            got = mod.suite(quick=args.quick)
        except SystemExit as e:
            problems.append(f"{name}: {e}")
            continue
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            problems.append(f"{name}: failed\n{traceback.format_exc()}")
            continue
        for r in got:
            r.setdefault("seconds", round(time.perf_counter() - t, 1))
        rows += got
    cols = ["bench", "metric", "value", "baseline", "baseline_value", "target"]
    table = markdown_table(rows, cols)
    print("\n" + table)
    for p in problems:
        print("!", p)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.md").write_text("# Spravka benchmarks\n\n" + table + "\n", encoding="utf-8")
    (RESULTS / "summary.json").write_text(json.dumps({"rows": rows, "problems": problems}, ensure_ascii=False,
                                                     indent=1), encoding="utf-8")
    print(f"\nwritten {RESULTS / 'summary.md'} and summary.json")


if __name__ == "__main__":
    main()
