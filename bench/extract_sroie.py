"""Structured extraction on real scanned receipts (SROIE 2019, ``../shared/data/sroie-receipts``).

Two tasks, as the data's SOURCE.md scores them, each with a baseline measured in the same run:

* **image → JSON**: tesseract OCR of the receipt photo, then Spravka's extraction (schema
  ``receipt``: company, date, address, total). Baselines: the same model's record before its strings
  are snapped to the document's own words (same run), and regular-expression rules over the same
  OCR text (first upper-case line, first date, the number after TOTAL);
* **text → JSON**: the gold OCR lines (``box/``) instead of our OCR, so extraction is scored
  apart from OCR errors.

Per field: exact match with whitespace and case ignored (dates compared as dates, totals as
numbers); a record is right when all four fields are. Also: OCR word recall against the gold
lines, the share of records the checks send to a person, and how many of the wrong records they
catch (what a reviewer would see before a wrong record goes out).

    python -m bench.extract_sroie --model qwen2.5-coder-1.5b-instruct-q4_k_m   # ~20 min on 2 cores
    python -m bench.extract_sroie --limit 10                                    # a quick look
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import re
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import RESULTS, markdown_table, save_result, shared_data
from spravka.evaluate.extraction import review_rates

FIELDS = ("company", "date", "address", "total")


@functools.cache
def _receipt() -> Any:
    from spravka.extract import load_schema

    return load_schema("receipt")


def field_ok(name: str, got: Any, gold: Any) -> bool:
    """The scoring of ``spravka eval extract`` (whitespace and case ignored, dates as dates, totals as numbers)."""
    from spravka.evaluate.extraction import field_match

    return field_match(_receipt().spec.fields[name], got, gold)


def rules_baseline(text: str) -> dict[str, Any]:
    """What a few regular expressions get from the same text (no model)."""
    from spravka.extract.checks import dates_in

    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    company = next((ln for ln in lines if re.search(r"(SDN\.?\s*BHD|ENTERPRISE|TRADING|S/B|RESTAURANT|STORE|MART)", ln,
                                                     re.IGNORECASE)), lines[0] if lines else None)
    dates = [d for d in (_first_date(ln) for ln in lines) if d]
    total = None
    for ln in lines:
        if re.search(r"\b(grand\s*)?total\b", ln, re.IGNORECASE) and not re.search(r"qty|quantity|excl|gst\s*summary",
                                                                                    ln, re.IGNORECASE):
            nums = re.findall(r"\d+[.,]\d{2}", ln)
            if nums:
                total = nums[-1].replace(",", ".")
    idx = lines.index(company) if company in lines else 0
    addr = []
    for ln in lines[idx + 1 : idx + 6]:
        if re.search(r"(GST|TEL|FAX|REG|INVOICE|RECEIPT|DATE|\(\d)", ln, re.IGNORECASE) or dates_in(ln):
            break
        addr.append(ln)
    return {"company": company, "date": dates[0] if dates else None, "address": " ".join(addr) or None, "total": total}


def _first_date(line: str) -> str | None:
    m = re.search(r"\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{1,2}\s+[A-Za-z]{3}\s+\d{4}", line)
    return m.group(0) if m else None


def word_recall(ocr: str, gold: str) -> float:
    g = Counter(re.findall(r"\w+", gold.casefold()))
    o = Counter(re.findall(r"\w+", ocr.casefold()))
    return sum(min(n, o[w]) for w, n in g.items()) / max(1, sum(g.values()))


def score(records: list[dict[str, Any]], key: str) -> dict[str, float]:
    n = len(records)
    out = {f: sum(field_ok(f, (r[key] or {}).get(f), r["gold"].get(f)) for r in records) / n for f in FIELDS}
    out["all 4 fields"] = sum(all(field_ok(f, (r[key] or {}).get(f), r["gold"].get(f)) for f in FIELDS)
                              for r in records) / n
    return out


def run(model: str | None, limit: int | None, text_limit: int) -> dict[str, Any]:
    from spravka.app import Spravka
    from spravka.core.settings import Settings
    from spravka.models.ocr import Tesseract

    data = shared_data() / "sroie-receipts"
    images = sorted((data / "img").glob("*.jpg"))[:limit]
    llm: dict[str, Any] = {"provider": "llamacpp", "timeout_s": 600}
    if model:
        llm["local_model"] = model
    home = Path(tempfile.mkdtemp(prefix="spravka-bench-extract-"))
    models_dir = Path.home() / ".spravka" / "models"
    if models_dir.is_dir():
        llm["models_dir"] = str(models_dir)
    app = Spravka(Settings(home=home, embedder={"provider": "use"}, llm=llm,
                           extract={"ocr_languages": "eng", "review": "never"}))
    ex, ocr = app.extractor, Tesseract("eng", psm=4)

    def gold_text(stem: str) -> str:
        with (data / "box" / f"{stem}.csv").open(encoding="utf-8", errors="replace") as f:
            return "\n".join(",".join(row[8:]) for row in csv.reader(f) if len(row) > 8)

    tasks: dict[str, list[dict[str, Any]]] = {"image → JSON (our OCR)": [], "text → JSON (gold OCR lines)": []}
    t_ocr = t_llm = 0.0
    for i, img in enumerate(images):
        gold = json.loads((data / "key" / f"{img.stem}.json").read_text(encoding="utf-8"))
        t = time.perf_counter()
        text = ocr.read(img).text
        t_ocr += time.perf_counter() - t
        t = time.perf_counter()
        r = ex.extract_text(text, "receipt", source=img.name, review=False)
        t_llm += time.perf_counter() - t
        tasks["image → JSON (our OCR)"].append({"id": img.stem, "gold": gold, "spravka": r.data, "flagged": bool(r.issues),
                                                "unsnapped": {**(r.data or {}), **r.snapped},
                                                "rules": rules_baseline(text), "recall": word_recall(text, gold_text(img.stem))})
        print(f"  image {i + 1}/{len(images)} {img.stem}: {r.status} "
              f"{sum(field_ok(f, (r.data or {}).get(f), gold.get(f)) for f in FIELDS)}/4", flush=True)
    keys = sorted((data / "key").glob("*.json"))
    for i, k in enumerate(keys[:text_limit]):
        gold = json.loads(k.read_text(encoding="utf-8"))
        text = gold_text(k.stem)
        r = ex.extract_text(text, "receipt", source=f"{k.stem}.txt", review=False)
        tasks["text → JSON (gold OCR lines)"].append({"id": k.stem, "gold": gold, "spravka": r.data,
                                                      "unsnapped": {**(r.data or {}), **r.snapped},
                                                      "flagged": bool(r.issues), "rules": rules_baseline(text)})
        print(f"  text {i + 1}/{min(text_limit, len(keys))} {k.stem}: {r.status}", flush=True)
    app.close()

    rows, summary = [], {}
    for task, recs in tasks.items():
        if not recs:
            continue
        ours, base, unsnapped = score(recs, "spravka"), score(recs, "rules"), score(recs, "unsnapped")
        rates = review_rates([(all(field_ok(f, (r["spravka"] or {}).get(f), r["gold"].get(f)) for f in FIELDS),
                               r["flagged"]) for r in recs])
        summary[task] = {"n": len(recs), "spravka": ours, "rules": base, "spravka_unsnapped": unsnapped, **rates}
        for f in (*FIELDS, "all 4 fields"):
            rows.append({"task": task, "n": len(recs), "field": f, "spravka": ours[f],
                         "without snapping": unsnapped[f], "rules baseline": base[f]})
    if tasks["image → JSON (our OCR)"]:
        summary["ocr_word_recall"] = sum(r["recall"] for r in tasks["image → JSON (our OCR)"]) / len(tasks["image → JSON (our OCR)"])
    summary["seconds"] = {"ocr_per_image": t_ocr / max(1, len(images)), "llm_per_image": t_llm / max(1, len(images))}
    summary["model"] = model or "default"
    return {"rows": rows, "summary": summary, "records": tasks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="local GGUF name (default: settings, the 0.5B test model)")
    ap.add_argument("--limit", type=int, default=None, help="images (default: all 76)")
    ap.add_argument("--text-limit", type=int, default=40, help="receipts for text → JSON (default 40)")
    args = ap.parse_args()
    r = run(args.model, args.limit, args.text_limit)
    print()
    print(markdown_table(r["rows"], ["task", "n", "field", "spravka", "without snapping", "rules baseline"]))
    s = r["summary"]
    for task in ("image → JSON (our OCR)", "text → JSON (gold OCR lines)"):
        if task in s:
            t = s[task]
            print(f"\n{task}: checks flag {t['flagged']:.0%} of records; they catch "
                  f"{t['wrong_caught']:.0%} of the wrong ones and flag {t['right_flagged']:.0%} of the right ones")
    if "ocr_word_recall" in s:
        print(f"OCR word recall vs the gold lines: {s['ocr_word_recall']:.3f}")
    print(f"seconds per image: OCR {s['seconds']['ocr_per_image']:.1f}, LLM {s['seconds']['llm_per_image']:.1f} ({s['model']})")
    print("saved", save_result(f"extract_sroie-{(args.model or 'default').split('-instruct')[0]}", r))


def suite(quick: bool = False) -> list[dict]:
    r = run(None, 10 if quick else None, 10 if quick else 40)
    s = r["summary"]["image → JSON (our OCR)"]
    bench = f"extraction (SROIE receipts, {s['n']} scans)"
    return [
        {"bench": bench, "metric": "all 4 fields right", "value": s["spravka"]["all 4 fields"],
         "baseline": "regex rules, same OCR", "baseline_value": s["rules"]["all 4 fields"], "target": ""},
        {"bench": bench, "metric": "total right", "value": s["spravka"]["total"], "baseline": "regex rules",
         "baseline_value": s["rules"]["total"], "target": ""},
        {"bench": bench, "metric": "wrong records caught by checks", "value": s["wrong_caught"],
         "baseline": "", "baseline_value": "", "target": ""},
    ]


if __name__ == "__main__":
    RESULTS.mkdir(parents=True, exist_ok=True)
    main()
