"""The generation checks against invented facts, on real support replies (RUTUBE, ``../shared/data``).

The RUTUBE dev cases hold 399 real questions, each with the **operator's real reply** and the
FAQ entry it rests on. Three measurements, each beside a baseline in the same run:

1. **Real replies, as they are.** Evidence = the FAQ entry (question and answer) plus the user's
   question; text = the operator's reply. What share does the check flag? Operators do add facts
   of their own (a link, a clause), so a flag is not always a false alarm: this is an upper bound
   on false alarms, and the examples are printed to judge.
2. **Injected inventions.** Each real reply gets one invention of a kind: a number changed, a
   deadline added, a phone number, a link, an outside name, and (the honest limit) a meaning
   flipped with no new fact («можно» → «нельзя»). Recall per kind. Baseline: a literal
   numbers-only check (every digit run of the text must occur in the evidence), which is what a
   first version of such a check usually is.
3. **With a model** (``--model``, optional): the built-in ``support_reply`` template writes replies
   to the first N questions with the gold FAQ entry as its passage, through ``Generator`` (prompt,
   the neutral tone with the company's name, as a deployment sets it; checks, one retry). How many drafts pass, why the others do not, attempts and seconds.

    python -m bench.generate_checks                                                 # parts 1-2, seconds
    python -m bench.generate_checks --model qwen2.5-coder-1.5b-instruct-q4_k_m -n 40   # part 3 too
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import RESULTS, markdown_table, read_jsonl, save_result, shared_data

KINDS = ("number_changed", "deadline_added", "phone_added", "link_added", "name_added", "meaning_flipped")


def cases() -> list[dict[str, Any]]:
    return [c for c in read_jsonl(shared_data() / "rutube-support-faq" / "cases.dev.jsonl")
            if c.get("operator_answer") and c.get("kb_answer")]


def evidence_of(case: dict[str, Any]) -> str:
    return "\n".join([case["kb_question"], case["kb_answer"], case["user_question"]])


def source_of(case: dict[str, Any]) -> str:
    """The passage alone: a reply may contradict the user («не могу войти» → «войти можно…»)."""
    return "\n".join([case["kb_question"], case["kb_answer"]])


def ours(text: str, case: dict[str, Any]) -> list[str]:
    """Spravka's checks: facts not in the evidence, and sentences that say the opposite of the passage."""
    from spravka.answer.check import unsupported_facts
    from spravka.answer.polarity import reversed_claims

    return unsupported_facts(text, evidence_of(case)) + [f"reversed: {s}" for s in reversed_claims(text, source_of(case))]


def numbers_only(text: str, evidence: str) -> list[str]:
    """The baseline: every digit run of the text must occur, as written, in the evidence."""
    return [d for d in re.findall(r"\d+", text) if d not in evidence]


def names_pool(rows: list[dict[str, Any]]) -> list[str]:
    """Outside names to inject: «quoted» names and Latin words of other FAQ entries, plus a few products."""
    pool = {m for c in rows for m in re.findall(r"«([^»]{3,30})»", c["kb_answer"])}
    pool |= {"Яндекс Дзен", "VK Видео", "Госуслуги", "Сбербанк Онлайн", "Telegram", "WhatsApp"}
    return sorted(pool)


def inject(kind: str, text: str, evidence: str, rng: random.Random, names: list[str]) -> str | None:
    """``text`` with one invention of ``kind``, or None when the text offers no place for it."""
    ev = evidence.lower()
    if kind == "number_changed":
        nums = [m for m in re.finditer(r"(?<![\d./:-])\d{1,4}(?![\d./:-])", text) if m.group(0) in evidence]
        if not nums:
            return None
        m = rng.choice(nums)
        new = next(str(v) for v in (int(m.group(0)) + d for d in (1, 2, 3, 5, 7, 10, 11, 13)) if str(v) not in evidence)
        return text[: m.start()] + new + text[m.end():]
    if kind == "deadline_added":
        k = next(v for v in rng.sample([3, 5, 7, 10, 14, 21, 30, 45], 8) if str(v) not in evidence)
        return text.rstrip() + f" Срок рассмотрения — до {k} рабочих дней."
    if kind == "phone_added":
        return text.rstrip() + f" Телефон поддержки: 8 800 {rng.randint(200, 999)}-{rng.randint(10, 99)}-" \
                               f"{rng.randint(10, 99)}."
    if kind == "link_added":
        slug = next(s for s in rng.sample(["bonus_program", "partners", "refund", "verification_help", "studio_faq",
                                           "payouts", "appeal_form"], 7) if s.split("_")[0] not in ev)
        return text.rstrip() + f" Подробнее: https://rutube.ru/info/{slug}/"
    if kind == "name_added":
        outside = [n for n in names if n.lower() not in ev]
        return text.rstrip() + f" Также можно обратиться через «{rng.choice(outside)}»."
    if kind == "meaning_flipped":
        for a, b in ((" можно ", " нельзя "), (" нельзя ", " можно "), (" не ", " "), (" доступн", " недоступн")):
            if a in text:
                return text.replace(a, b, 1)
        return None
    raise ValueError(kind)


def measure_checks(rows: list[dict[str, Any]], seed: int = 13) -> dict[str, Any]:
    rng = random.Random(seed)
    names = names_pool(rows)
    clean = {"ours": 0, "numbers_only": 0}
    examples: list[dict[str, Any]] = []
    injected: dict[str, dict[str, int]] = {k: {"n": 0, "ours": 0, "numbers_only": 0} for k in KINDS}
    for c in rows:
        ev = evidence_of(c)
        got = ours(c["operator_answer"], c)
        got_num = numbers_only(c["operator_answer"], ev)
        clean["ours"] += bool(got)
        clean["numbers_only"] += bool(got_num)
        if got and len(examples) < 12:
            examples.append({"case_id": c["case_id"], "flagged": got[:6]})
        base_ours, base_num = set(got), set(got_num)
        for kind in KINDS:
            text = inject(kind, c["operator_answer"], ev, rng, names)
            if text is None:
                continue
            s = injected[kind]
            s["n"] += 1
            s["ours"] += bool(set(ours(text, c)) - base_ours)  # caught: a new flag beyond the reply's own
            s["numbers_only"] += bool(set(numbers_only(text, ev)) - base_num)
    n = len(rows)
    return {"n": n, "clean_flagged": {k: v / n for k, v in clean.items()}, "examples": examples,
            "injected": {k: {"n": v["n"], "ours": v["ours"] / max(1, v["n"]),
                             "numbers_only": v["numbers_only"] / max(1, v["n"])} for k, v in injected.items()}}


def measure_model(rows: list[dict[str, Any]], model: str, n: int) -> dict[str, Any]:
    from spravka.answer.sources import Source
    from spravka.app import Spravka
    from spravka.core.settings import Settings
    from spravka.core.types import Hit
    from spravka.generate import Generator

    llm: dict[str, Any] = {"provider": "llamacpp", "timeout_s": 600, "local_model": model}
    models_dir = Path.home() / ".spravka" / "models"
    if models_dir.is_dir():
        llm["models_dir"] = str(models_dir)
    home = Path(tempfile.mkdtemp(prefix="spravka-bench-generate-"))
    app = Spravka(Settings(home=home, embedder={"provider": "use"}, llm=llm,
                           generate={"temperature": 0.0, "review": "never"}))
    current: dict[str, Any] = {}

    def gold_passage(query: str, collection: str, flt: Any, k: int) -> list[Source]:
        c = current["case"]
        hit = Hit(chunk_id=f"faq-{c['gold_faq_ids'][0]}#0", doc_id=f"faq-{c['gold_faq_ids'][0]}", collection="rutube",
                  text=c["kb_answer"], title=c["kb_question"].strip(), heading="", score=1.0)
        return [Source(1, hit, c["kb_answer"], 0, len(c["kb_answer"]), [hit.chunk_id])]

    gen = Generator(lambda: app.llm, gold_passage, app.inbox, app.outbox, app.settings.generate,
                    log_event=lambda *a, **k: None, default_collection="rutube")
    # a deployment names its company in its tone (here: the built-in neutral one, plus the name)
    from spravka.generate import load_tone

    tone = load_tone("neutral").model_copy(update={"name": "rutube", "company": "RUTUBE"})
    statuses: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    attempts: list[int] = []
    drafts: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for i, c in enumerate(rows[:n]):
        current["case"] = c
        r = gen.generate("support_reply", {"request": c["user_question"][:4000]}, tone=tone)
        statuses[r.status] += 1
        kinds.update({i.kind for i in r.issues})
        attempts.append(r.attempts)
        drafts.append({"case_id": c["case_id"], "status": r.status, "text": r.text,
                       "issues": [x.to_dict() for x in r.issues]})
        print(f"  {i + 1}/{min(n, len(rows))} case {c['case_id']}: {r.status} {r.attempts} "
              f"{'; '.join(x.message[:70] for x in r.issues)}", flush=True)
    seconds = (time.perf_counter() - t0) / max(1, len(drafts))
    app.close()
    total = max(1, len(drafts))
    return {"model": model, "n": len(drafts), "status": {k: v / total for k, v in statuses.items()},
            "issue_kinds": {k: v / total for k, v in kinds.most_common()},
            "mean_attempts": sum(attempts) / total, "seconds_per_text": seconds, "drafts": drafts}


def run(model: str | None, n: int) -> dict[str, Any]:
    rows = cases()
    out: dict[str, Any] = {"checks": measure_checks(rows)}
    if model:
        out["model"] = measure_model(rows, model, n)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a local GGUF name: also write replies with it (part 3)")
    ap.add_argument("-n", type=int, default=40, help="questions for part 3 (default 40)")
    args = ap.parse_args()
    r = run(args.model, args.n)
    c = r["checks"]
    print(f"\n1. {c['n']} real operator replies against their FAQ entry: flagged by Spravka's check "
          f"{c['clean_flagged']['ours']:.1%}, by the numbers-only baseline {c['clean_flagged']['numbers_only']:.1%}")
    for e in c["examples"][:6]:
        print(f"   case {e['case_id']}: {', '.join(e['flagged'])}")
    rows = [{"invention": k, "n": v["n"], "Spravka check": v["ours"], "numbers-only baseline": v["numbers_only"]}
            for k, v in c["injected"].items()]
    print("\n2. one invention injected into each real reply: share caught\n")
    print(markdown_table(rows, ["invention", "n", "Spravka check", "numbers-only baseline"]))
    if "model" in r:
        m = r["model"]
        print(f"\n3. {m['n']} replies written by {m['model']} (template support_reply, tone neutral + company RUTUBE, "
              f"the gold FAQ entry as the passage): " + ", ".join(f"{k} {v:.0%}" for k, v in m["status"].items())
              + f"; attempts {m['mean_attempts']:.2f}; {m['seconds_per_text']:.1f} s per text")
        print("   issues (share of drafts): " + ", ".join(f"{k} {v:.0%}" for k, v in m["issue_kinds"].items()))
    print("saved", save_result(f"generate_checks-{(args.model or 'checks').split('-instruct')[0]}", r))


def suite(quick: bool = False) -> list[dict]:
    c = run(None, 0)["checks"]
    inj = c["injected"]
    factual = [k for k in KINDS if k != "meaning_flipped"]
    mean = lambda key: sum(inj[k][key] for k in factual) / len(factual)  # noqa: E731
    bench = f"generation checks (RUTUBE, {c['n']} real replies)"
    return [
        {"bench": bench, "metric": "injected facts caught (5 kinds, mean)", "value": mean("ours"),
         "baseline": "numbers-only check", "baseline_value": mean("numbers_only"), "target": ""},
        {"bench": bench, "metric": "real replies flagged", "value": c["clean_flagged"]["ours"],
         "baseline": "numbers-only check", "baseline_value": c["clean_flagged"]["numbers_only"], "target": ""},
    ]


if __name__ == "__main__":
    RESULTS.mkdir(parents=True, exist_ok=True)
    main()
