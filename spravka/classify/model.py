"""The label model: kNN, logistic regression on embeddings and on TF-IDF, pooled and calibrated.

Three members, each a probability over the leaf labels:

* ``knn``: the nearest labelled examples (e5 query vectors, cosine). Works from one example per
  class and follows corrections at once: the service hands in a kNN over the *current* examples.
* ``logreg``: logistic regression on the standardised embeddings. Needs a few examples per class.
* ``tfidf``: logistic regression on word and character n-gram TF-IDF: the lexical cues (product
  and feature names, inflected Russian forms) a small sentence encoder blurs.

:meth:`LabelModel.fit` computes stratified K-fold out-of-fold probabilities of every member,
chooses the pooling weights and one temperature that minimise their log-loss (Platt-style
temperature scaling), then refits the supervised members on all examples. So the pooled
confidence is calibrated on data the members did not see, and the threshold of the triage queue
has a meaning. With too few examples for folds the model is kNN alone, its temperature fitted by
leave-one-out when there are at least two examples per class.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spravka.classify.calibrate import fit_ensemble, pool, stratified_folds
from spravka.classify.features import Tfidf
from spravka.classify.knn import KnnModel
from spravka.classify.linear import Design, LogisticRegression

FORMAT = 1


@dataclass
class ModelOptions:
    k: int = 10
    knn_temperature: float = 0.05
    #: L2 penalty of the embedding and the TF-IDF regressions (chosen by CV on training sets only)
    l2: float = 1e-5
    tfidf_l2: float = 1e-4
    #: weigh classes inversely to their frequency (imbalanced routing data)
    balanced: bool = True
    tfidf: bool = True
    #: TF-IDF features: lemma uni- and bigrams plus character 4-grams of the lemmas (3-5-grams are
    #: no better on RUTUBE and 2.5x the non-zeros, i.e. the fitting time)
    char_ngrams: tuple[int, int] | None = (4, 4)
    lemmatize: bool = True
    #: the supervised members join once there are this many examples per class on average
    min_per_class: float = 5.0
    folds: int = 5
    #: from this many examples on, 3 folds: the out-of-fold estimate is stable and a Banking77-size
    #: refit (10k examples, 77 classes) takes 40% less time
    large: int = 5000
    max_iter: int = 200
    seed: int = 0


@dataclass
class FitReport:
    n: int
    classes: int
    members: list[str]
    weights: dict[str, float]
    temperature: float
    #: out-of-fold quality of the pooled model (None for kNN alone without enough examples)
    cv_accuracy: float | None = None
    cv_macro_f1: float | None = None
    cv_nll: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


class LabelModel:
    def __init__(self, labels: list[str], options: ModelOptions | None = None) -> None:
        self.labels = list(labels)
        self.options = options or ModelOptions()
        self.mu: np.ndarray | None = None
        self.sd: np.ndarray | None = None
        self.logreg: LogisticRegression | None = None
        self.tfidf: Tfidf | None = None
        self.tfidf_lr: LogisticRegression | None = None
        self.weights: dict[str, float] = {"knn": 1.0}
        self.temperature = 1.0
        self.report: FitReport | None = None

    @property
    def members(self) -> list[str]:
        return [m for m, w in self.weights.items() if w > 0]

    # ---- fitting -----------------------------------------------------------------------------
    def fit(self, texts: list[str], vectors: np.ndarray, y: np.ndarray) -> FitReport:
        t0 = time.perf_counter()
        o = self.options
        n, c = len(y), len(self.labels)
        counts = np.bincount(y, minlength=c)
        present = counts[counts > 0]
        # a rare class is fine (it sits in fewer folds); too few examples overall are not
        supervised = len(present) > 1 and n >= max(o.min_per_class * len(present), 2 * o.folds)
        notes = []
        if not supervised:
            notes.append(f"kNN only: {n} examples for {len(present)} classes (logistic regression needs "
                         f"{o.min_per_class:g} per class on average)")
            self.weights = {"knn": 1.0}
            self.logreg = self.tfidf = self.tfidf_lr = None
            self.temperature, loss = self._loo_temperature(vectors, y)
            self.report = FitReport(n, c, ["knn"], dict(self.weights), self.temperature, cv_nll=loss,
                                    seconds=time.perf_counter() - t0, notes=notes)
            return self.report

        n_folds = o.folds if n < o.large else min(o.folds, 3)
        folds = stratified_folds(y, n_folds, seed=o.seed)
        names = ["knn", "logreg"] + (["tfidf"] if o.tfidf else [])
        oof = {m: np.zeros((n, c)) for m in names}
        for f in range(n_folds):
            tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            part = self._fit_supervised([texts[i] for i in tr], vectors[tr], y[tr])
            knn = KnnModel(o.k, o.knn_temperature).fit(vectors[tr], y[tr], c)
            probs = part._member_probs([texts[i] for i in te], vectors[te], knn)
            for m in names:
                oof[m][te] = probs[m]
        weights, self.temperature, loss = fit_ensemble([oof[m] for m in names], y)
        self.weights = dict(zip(names, weights, strict=True))
        pooled = pool([oof[m] for m in names], weights, self.temperature)
        final = self._fit_supervised(texts, vectors, y)
        self.mu, self.sd, self.logreg = final.mu, final.sd, final.logreg
        self.tfidf, self.tfidf_lr = final.tfidf, final.tfidf_lr
        from spravka.classify.metrics import accuracy, macro_f1

        gold = [self.labels[i] for i in y]
        pred = [self.labels[i] for i in pooled.argmax(1)]
        self.report = FitReport(n, c, self.members, {k: round(v, 3) for k, v in self.weights.items()},
                                round(self.temperature, 4), round(accuracy(gold, pred), 4),
                                round(macro_f1(gold, pred), 4), round(loss, 4), time.perf_counter() - t0, notes)
        return self.report

    def _fit_supervised(self, texts: list[str], vectors: np.ndarray, y: np.ndarray) -> LabelModel:
        o = self.options
        m = LabelModel(self.labels, o)
        m.mu = vectors.mean(axis=0)
        m.sd = vectors.std(axis=0) + 1e-6
        m.logreg = LogisticRegression(o.l2, balanced=o.balanced, max_iter=o.max_iter).fit(
            m._dense(vectors), y, len(self.labels))
        if o.tfidf:
            m.tfidf = Tfidf(word_ngrams=2, char_ngrams=o.char_ngrams, min_df=2, lemmatize=o.lemmatize).fit(texts)
            m.tfidf_lr = LogisticRegression(o.tfidf_l2, balanced=o.balanced, max_iter=o.max_iter).fit(
                Design(sparse=m.tfidf.transform(texts)), y, len(self.labels))
        return m

    def _loo_temperature(self, vectors: np.ndarray, y: np.ndarray) -> tuple[float, float | None]:
        """Leave-one-out kNN calibration; 1.0 when some class has a single example."""
        counts = np.bincount(y, minlength=len(self.labels))
        if len(y) < 4 or counts[counts > 0].min() < 2:
            return 1.0, None
        o = self.options
        knn = KnnModel(o.k, o.knn_temperature).fit(vectors, y, len(self.labels))
        probs = knn.predict_proba(vectors, exclude=np.arange(len(y)))
        _, t, loss = fit_ensemble([probs], y)
        return float(np.clip(t, 0.25, 4.0)), loss

    # ---- prediction --------------------------------------------------------------------------
    def _dense(self, vectors: np.ndarray) -> Design:
        z = (vectors - self.mu) / self.sd / np.sqrt(vectors.shape[1])
        return Design(dense=z.astype(np.float32))

    def _member_probs(self, texts: list[str], vectors: np.ndarray, knn: KnnModel) -> dict[str, np.ndarray]:
        out = {"knn": knn.predict_proba(vectors) if len(knn.y) else np.full((len(texts), len(self.labels)),
                                                                             1.0 / len(self.labels))}
        if self.logreg is not None:
            out["logreg"] = self.logreg.predict_proba(self._dense(vectors))
        if self.tfidf is not None and self.tfidf_lr is not None:
            out["tfidf"] = self.tfidf_lr.predict_proba(Design(sparse=self.tfidf.transform(texts)))
        return out

    def predict(self, texts: list[str], vectors: np.ndarray, knn: KnnModel) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Pooled, calibrated probabilities (rows × labels) and each member's own."""
        members = self._member_probs(texts, vectors, knn)
        names = [m for m in self.weights if m in members and self.weights[m] > 0] or ["knn"]
        weights = [self.weights.get(m, 1.0) for m in names]
        return pool([members[m] for m in names], weights, self.temperature), members

    def tfidf_terms(self, text: str, label: int, n: int = 4) -> list[str]:
        """The n-grams that pushed ``text`` towards ``label`` most (for explanations)."""
        if self.tfidf is None or self.tfidf_lr is None:
            return []
        row = self.tfidf.transform([text])
        contrib = row.data * (self.tfidf_lr.coef[row.indices, label] - self.tfidf_lr.coef[row.indices].mean(axis=1))
        names = self.tfidf.feature_names()
        out: list[str] = []
        for i in np.argsort(-contrib):
            if contrib[i] <= 0 or len(out) >= n:
                break
            feat = names[row.indices[i]]
            if feat.startswith("w:"):
                out.append(feat[2:])
        return out

    # ---- persistence -------------------------------------------------------------------------
    def save(self, folder: Path, extra: dict[str, Any] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        if self.logreg is not None:
            assert self.mu is not None and self.sd is not None  # set together with logreg by fit/load
            arrays |= {"mu": self.mu, "sd": self.sd, "lr_coef": self.logreg.coef, "lr_b": self.logreg.intercept}
        if self.tfidf is not None and self.tfidf_lr is not None:
            arrays |= {"tf_idf": self.tfidf.idf, "tf_coef": self.tfidf_lr.coef, "tf_b": self.tfidf_lr.intercept}
        meta = {
            "format": FORMAT, "labels": self.labels, "options": asdict(self.options), "weights": self.weights,
            "temperature": self.temperature, "report": asdict(self.report) if self.report else None,
            "tfidf": {"vocab": self.tfidf.feature_names(), "word_ngrams": self.tfidf.word_ngrams,
                      "char_ngrams": self.tfidf.char_ngrams, "lemmatize": self.tfidf.lemmatize}
            if self.tfidf is not None else None,
            **(extra or {}),
        }
        tmp_npz, tmp_json = folder / "model.tmp.npz", folder / "model.tmp.json"
        np.savez_compressed(tmp_npz, **arrays)  # type: ignore[arg-type]  # numpy stubs: **kwds as bool
        tmp_json.write_text(json.dumps(meta, ensure_ascii=False))
        tmp_npz.replace(folder / "model.npz")
        tmp_json.replace(folder / "model.json")

    @classmethod
    def load(cls, folder: Path) -> tuple[LabelModel, dict[str, Any]] | None:
        try:
            meta = json.loads((folder / "model.json").read_text())
            arrays = np.load(folder / "model.npz")
        except (OSError, ValueError):
            return None
        if meta.get("format") != FORMAT:
            return None
        opts = meta["options"]
        if opts.get("char_ngrams") is not None:
            opts["char_ngrams"] = tuple(opts["char_ngrams"])
        m = cls(meta["labels"], ModelOptions(**opts))
        m.weights = {k: float(v) for k, v in meta["weights"].items()}
        m.temperature = float(meta["temperature"])
        if meta.get("report"):
            m.report = FitReport(**meta["report"])
        if "lr_coef" in arrays:
            m.mu, m.sd = arrays["mu"], arrays["sd"]
            m.logreg = LogisticRegression(m.options.l2)
            m.logreg.coef, m.logreg.intercept = arrays["lr_coef"], arrays["lr_b"]
        if meta.get("tfidf") and "tf_coef" in arrays:
            t = meta["tfidf"]
            m.tfidf = Tfidf(word_ngrams=t["word_ngrams"], char_ngrams=tuple(t["char_ngrams"]) if t["char_ngrams"] else None,
                            lemmatize=bool(t.get("lemmatize")))
            m.tfidf.vocab = {f: i for i, f in enumerate(t["vocab"])}
            m.tfidf.idf = arrays["tf_idf"]
            m.tfidf_lr = LogisticRegression(m.options.tfidf_l2)
            m.tfidf_lr.coef, m.tfidf_lr.intercept = arrays["tf_coef"], arrays["tf_b"]
        return m, meta

