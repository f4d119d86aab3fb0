"""Ticket classification: Spravka's calibrated ensemble beside a TF-IDF + logistic-regression
baseline, both fitted in the same run on the same training data.

* **Banking77** (English, 77 intents): the official test split with the full train set, and a
  few-shot curve (5, 10, 20 examples per class drawn from train; mean over seeds).
* **RUTUBE support** (Russian): class_1 (11 classes) and class_2 (39) of the 399 real user
  questions; train = the 326 labelled KB questions + 4/5 of the questions, test = the other
  1/5, five folds. Accuracy, macro-F1 and accuracy at 80% coverage (confidence-ranked).

Spravka: kNN over e5 query vectors + logistic regression on the standardised vectors + logistic
regression on lemma/char-4-gram TF-IDF, pooled with weights and a temperature fitted on
out-of-fold predictions of the training set (``spravka.classify.model``). No LLM here (2 CPU cores).
Baseline: word uni+bigram TF-IDF (sublinear tf) + multinomial logistic regression (balanced
classes); its L2 penalty is chosen on a 20% holdout of the *training* set. Neither system ever
sees the test split before scoring. Hyper-parameters of ours were chosen by CV on Banking77's
train split and on RUTUBE folds (not on the Banking77 test split).

    python -m bench.classify [--only banking77|rutube] [--seeds 3] [--no-full]

With scikit-learn importable (it is not a dependency), the same baseline built from
scikit-learn's TfidfVectorizer + LogisticRegression is printed too, as a check on ours.

Embeddings are cached in bench/results/home-classify-e5 (the first run embeds ~14k texts:
several minutes on 2 cores; later runs embed nothing).
"""

from __future__ import annotations

import os

# One BLAS thread: on a shared 2-core machine OpenBLAS's default thread pool oversubscribes the
# cores and small matrix products run 10x slower.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from bench.common import RESULTS, make_app, markdown_table, read_jsonl, save_result, shared_data  # noqa: E402
from spravka.classify import metrics  # noqa: E402
from spravka.classify.calibrate import stratified_folds  # noqa: E402
from spravka.classify.engine import prepare  # noqa: E402
from spravka.classify.evaluate import evaluate  # noqa: E402
from spravka.classify.features import Tfidf  # noqa: E402
from spravka.classify.linear import Design, LogisticRegression  # noqa: E402
from spravka.core.settings import ClassifySettings  # noqa: E402

L2_GRID = (1e-3, 1e-4, 1e-5)


# ---- the baseline -------------------------------------------------------------------------------
def tfidf_lr(train: list[tuple[str, str]], test: list[tuple[str, str]], *, char: bool = False,
             seed: int = 0) -> dict:
    """TF-IDF + logistic regression; L2 from ``L2_GRID`` on a 20% holdout of ``train``."""
    t0 = time.perf_counter()
    labels = sorted({lab for _, lab in train} | {lab for _, lab in test})
    pos = {lab: i for i, lab in enumerate(labels)}
    texts = [prepare(t) for t, _ in train]
    y = np.array([pos[lab] for _, lab in train])

    def features() -> Tfidf:
        if char:  # the lexical member of Spravka's ensemble, alone
            return Tfidf(word_ngrams=2, char_ngrams=(4, 4), min_df=2, lemmatize=True)
        return Tfidf(word_ngrams=2, char_ngrams=None, min_df=1)

    folds = stratified_folds(y, 5, seed=seed)
    tr, dv = np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)
    best = (-1.0, L2_GRID[0])
    for l2 in L2_GRID:
        tf = features().fit([texts[i] for i in tr])
        lr = LogisticRegression(l2, balanced=True).fit(Design(sparse=tf.transform([texts[i] for i in tr])), y[tr],
                                                         len(labels))
        p = lr.predict_proba(Design(sparse=tf.transform([texts[i] for i in dv]))).argmax(axis=1)
        f1 = metrics.macro_f1([labels[i] for i in y[dv]], [labels[i] for i in p])
        if f1 > best[0]:
            best = (f1, l2)
    tf = features().fit(texts)
    lr = LogisticRegression(best[1], balanced=True).fit(Design(sparse=tf.transform(texts)), y, len(labels))
    probs = lr.predict_proba(Design(sparse=tf.transform([prepare(t) for t, _ in test])))
    pred = [labels[i] for i in probs.argmax(axis=1)]
    gold = [lab for _, lab in test]
    return {"gold": gold, "pred": pred, "conf": probs.max(axis=1).tolist(), "l2": best[1],
            "seconds": time.perf_counter() - t0}


def sklearn_tfidf_lr(train: list[tuple[str, str]], test: list[tuple[str, str]], seed: int = 0) -> dict | None:
    """The same baseline with scikit-learn's TfidfVectorizer and LogisticRegression, when it is
    installed (not a dependency): a check that the numpy baseline is not a weak re-implementation."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression as SkLogReg
    except ImportError:
        return None
    t0 = time.perf_counter()
    texts, y = [prepare(t) for t, _ in train], [lab for _, lab in train]
    labels = sorted(set(y))
    folds = stratified_folds(np.array([labels.index(v) for v in y]), 5, seed=seed)
    tr, dv = np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)
    best = (-1.0, 1.0)
    for c in (1.0, 10.0, 100.0):
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit([texts[i] for i in tr])
        m = SkLogReg(C=c, class_weight="balanced", max_iter=2000).fit(vec.transform([texts[i] for i in tr]),
                                                                      [y[i] for i in tr])
        f1 = metrics.macro_f1([y[i] for i in dv], list(m.predict(vec.transform([texts[i] for i in dv]))))
        if f1 > best[0]:
            best = (f1, c)
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(texts)
    m = SkLogReg(C=best[1], class_weight="balanced", max_iter=2000).fit(vec.transform(texts), y)
    probs = m.predict_proba(vec.transform([prepare(t) for t, _ in test]))
    return {"gold": [lab for _, lab in test], "pred": [m.classes_[i] for i in probs.argmax(axis=1)],
            "conf": probs.max(axis=1).tolist(), "seconds": time.perf_counter() - t0}


def ours(app, train, test, method: str = "ensemble") -> dict:
    t0 = time.perf_counter()
    r = evaluate(app.embedder, ClassifySettings(), train, test, method=method, members=method != "knn")
    p = r.pop("predictions")
    return {"gold": [x["gold"] for x in p], "pred": [x["label"] for x in p], "conf": [x["confidence"] for x in p],
            "auto": [not x["needs_review"] for x in p],
            "fit": r["fit"], "members": r.get("members"), "ece": r["ece"], "seconds": time.perf_counter() - t0}


def scores(run: dict) -> dict:
    g, p, c = run["gold"], run["pred"], run["conf"]
    # routed without a person: ours = confident and in scope; the baseline = confidence >= 0.6
    auto = run.get("auto") or [x >= ClassifySettings().threshold for x in c]
    kept = [i for i, a in enumerate(auto) if a]
    return {"accuracy": metrics.accuracy(g, p), "macro_f1": metrics.macro_f1(g, p),
            "acc@80%cov": metrics.accuracy_at_coverage(g, p, c, 0.8),
            "ece": metrics.expected_calibration_error(g, p, c),
            "auto_routed": len(kept) / len(g), "acc_routed": metrics.accuracy([g[i] for i in kept], [p[i] for i in kept])}


# ---- Banking77 ---------------------------------------------------------------------------------
def banking77(app, seeds: int, full: bool) -> dict:
    data = shared_data() / "banking77"

    def load(name: str) -> list[tuple[str, str]]:
        with (data / name).open(encoding="utf-8") as f:
            return [(r["text"], r["category"]) for r in csv.DictReader(f)]

    train, test = load("train.csv"), load("test.csv")
    rows: list[dict] = []
    out: dict = {"train": len(train), "test": len(test)}
    if full:
        print(f"banking77: full train ({len(train)}) → test ({len(test)})", flush=True)
        for name, run in (("spravka ensemble", lambda: ours(app, train, test)),
                          ("spravka kNN only", lambda: ours(app, train, test, "knn")),
                          ("baseline TF-IDF+LR", lambda: tfidf_lr(train, test)),
                          ("baseline, scikit-learn", lambda: sklearn_tfidf_lr(train, test))):
            r = run()
            if r is None:
                continue
            rows.append({"setting": "full train", "system": name, **_round(scores(r)), "seconds": round(r["seconds"])})
            if r.get("fit"):
                out["full_fit"] = r["fit"]
                out["full_members"] = r["members"]
            print("  ", rows[-1], flush=True)
    by_label: dict[str, list[str]] = {}
    for t, lab in train:
        by_label.setdefault(lab, []).append(t)
    for shots in (5, 10, 20):
        acc: dict[str, list[dict]] = {}
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            few = [(t, lab) for lab, ts in sorted(by_label.items())
                   for t in (ts[i] for i in rng.choice(len(ts), size=min(shots, len(ts)), replace=False))]
            acc.setdefault("spravka ensemble", []).append(scores(ours(app, few, test)))
            acc.setdefault("baseline TF-IDF+LR", []).append(scores(tfidf_lr(few, test, seed=seed)))
            sk = sklearn_tfidf_lr(few, test, seed=seed)
            if sk is not None:
                acc.setdefault("baseline, scikit-learn", []).append(scores(sk))
        for name, runs in acc.items():
            mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
            rows.append({"setting": f"{shots}/class ({seeds} seeds)", "system": name, **_round(mean)})
            print("  ", rows[-1], flush=True)
    out["rows"] = rows
    return out


# ---- RUTUBE ------------------------------------------------------------------------------------
def rutube(app) -> dict:
    data = shared_data() / "rutube-support-faq"
    kb = read_jsonl(data / "knowledge_base.jsonl")
    cases = read_jsonl(data / "cases.dev.jsonl")
    rows = []
    out: dict = {"kb": len(kb), "cases": len(cases)}
    for level in ("class_1", "class_2"):
        kb_items = [(r["question"], r[level]) for r in kb]
        items = [(r["user_question"], r[level]) for r in cases]
        labels = sorted({lab for _, lab in items + kb_items})
        y = np.array([labels.index(lab) for _, lab in items])
        folds = stratified_folds(y, 5, seed=0)
        runs: dict[str, dict] = {}
        for f in range(5):
            train = kb_items + [items[i] for i in np.flatnonzero(folds != f)]
            test = [items[i] for i in np.flatnonzero(folds == f)]
            for name, fn in (("spravka ensemble", lambda tr=train, te=test: ours(app, tr, te)),
                             ("spravka kNN only", lambda tr=train, te=test: ours(app, tr, te, "knn")),
                             ("char-4-gram TF-IDF+LR (our lexical member alone)",
                              lambda tr=train, te=test: tfidf_lr(tr, te, char=True)),
                             ("baseline TF-IDF+LR", lambda tr=train, te=test: tfidf_lr(tr, te)),
                             ("baseline, scikit-learn", lambda tr=train, te=test: sklearn_tfidf_lr(tr, te))):
                r = fn()
                if r is None:
                    continue
                acc = runs.setdefault(name, {"gold": [], "pred": [], "conf": [], "auto": [], "seconds": 0.0})
                for k in ("gold", "pred", "conf"):
                    acc[k] += r[k]
                acc["auto"] += r.get("auto") or [x >= ClassifySettings().threshold for x in r["conf"]]
                acc["seconds"] += r["seconds"]
        for name, r in runs.items():
            rows.append({"setting": f"{level} ({len(labels)} classes)", "system": name, **_round(scores(r)),
                         "seconds": round(r["seconds"])})
            print("  ", rows[-1], flush=True)
    out["rows"] = rows
    return out


def _round(d: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["banking77", "rutube"])
    ap.add_argument("--seeds", type=int, default=3, help="few-shot draws per point")
    ap.add_argument("--no-full", action="store_true", help="skip Banking77 with the full train set")
    args = ap.parse_args()
    app = make_app(RESULTS / "home-classify-e5")
    t0 = time.perf_counter()
    result: dict = {"embedder": app.embedder.name}
    if args.only in (None, "rutube"):
        result["rutube"] = rutube(app)
    if args.only in (None, "banking77"):
        result["banking77"] = banking77(app, args.seeds, not args.no_full)
    result["seconds"] = round(time.perf_counter() - t0)
    cols = ["setting", "system", "accuracy", "macro_f1", "acc@80%cov", "ece", "auto_routed", "acc_routed", "seconds"]
    for name in ("rutube", "banking77"):
        if name in result:
            print(f"\n## {name}\n")
            print(markdown_table(result[name]["rows"], cols))
    path = save_result("classify", result)
    print(f"\nsaved {path}; {result['seconds']} s in all")
    app.close()


if __name__ == "__main__":
    main()
