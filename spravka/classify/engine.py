"""Prediction over one taxonomy: examples (kNN), the fitted label model, the LLM when unsure.

:class:`Engine` holds no database: the service (:mod:`spravka.classify.service`) feeds it the
current examples and the persisted model; ``spravka classify eval`` feeds it a training file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spravka.classify.features import embed_texts
from spravka.classify.knn import KnnModel
from spravka.classify.llm import UNKNOWN, LlmClassifier, combine
from spravka.classify.model import LabelModel, ModelOptions
from spravka.classify.taxonomy import Taxonomy
from spravka.classify.types import Candidate, Classification, Neighbour
from spravka.core.errors import InputError, ModelError
from spravka.core.settings import ClassifySettings
from spravka.core.text.normalize import normalize_query


def prepare(text: str) -> str:
    """The text as the models see it: no URLs, invisible characters or greeting."""
    return normalize_query(text or "")


def model_options(s: ClassifySettings) -> ModelOptions:
    return ModelOptions(k=s.k, knn_temperature=s.knn_temperature, l2=s.l2, tfidf_l2=s.tfidf_l2, tfidf=s.tfidf,
                        min_per_class=s.min_per_class)


@dataclass
class ExampleIndex:
    """Labelled examples as kNN rows (texts as stored, vectors of their prepared form)."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    knn: KnnModel = field(default_factory=KnnModel)
    #: decided by a person for a real ticket (a correction or a triage resolution)
    verified: list[bool] = field(default_factory=list)

    @classmethod
    def build(cls, embedder, taxonomy: Taxonomy, items: Sequence[tuple[str, str]], k: int, temperature: float,
              progress: Callable[[int], None] | None = None, verified: Sequence[bool] | None = None
              ) -> ExampleIndex:
        pos = {lab: i for i, lab in enumerate(taxonomy.labels)}
        # one row per distinct text, the last label winning (as in the example store): duplicates
        # would let kNN find a copy of itself in cross-validation and look better than it is
        unique: dict[str, tuple[str, str, bool]] = {}
        for i, (t, lab) in enumerate(items):
            key = prepare(t)
            if lab in pos and key:
                unique.pop(key, None)
                unique[key] = (t, lab, bool(verified[i]) if verified is not None else False)
        kept = list(unique.values())
        vectors = embed_texts(embedder, [prepare(t) for t, _, _ in kept], progress=progress)
        y = np.array([pos[lab] for _, lab, _ in kept], dtype=np.int64)
        knn = KnnModel(k, temperature).fit(vectors.reshape(len(kept), -1) if kept else
                                           np.zeros((0, embedder.dim), np.float32), y, len(taxonomy.labels))
        return cls([t for t, _, _ in kept], [lab for _, lab, _ in kept], knn, [v for _, _, v in kept])

    @property
    def y(self) -> np.ndarray:
        return self.knn.y

    @property
    def vectors(self) -> np.ndarray:
        return self.knn.vectors


class Engine:
    def __init__(self, taxonomy: Taxonomy, embedder, settings: ClassifySettings, index: ExampleIndex,
                 model: LabelModel | None = None, *, llm: Callable[[], Any] | None = None,
                 llm_available: Callable[[], bool] | None = None, fit: bool = True) -> None:
        self.taxonomy = taxonomy
        self.embedder = embedder
        self.settings = settings
        self.index = index
        if model is None or model.labels != taxonomy.labels:
            # no usable fitted model: fit one now (small example sets), or kNN with T=1
            model = LabelModel(taxonomy.labels, model_options(settings))
            if fit and len(index.y):
                model.fit([prepare(t) for t in index.texts], index.vectors, index.y)
        self.model = model
        self.novelty_line = self._similarity_quantile(settings.novelty_quantile)
        self.memory_line = self._similarity_quantile(settings.memory_quantile) if any(index.verified) else None
        self._llm = llm
        self._llm_available = llm_available or (lambda: False)
        self.llm_calls = 0
        self.llm_errors: list[str] = []

    def _similarity_quantile(self, q: float) -> float | None:
        """A quantile of the examples' leave-one-out nearest-neighbour similarity: how close
        "close" is for this embedder and these examples."""
        n = len(self.index.y)
        if q <= 0 or n < 10:
            return None
        if not hasattr(self, "_loo_sims"):
            _, sims = self.index.knn.neighbours(self.index.vectors, k=1, exclude=np.arange(n))
            self._loo_sims = sims[:, 0]
        return float(np.quantile(self._loo_sims, q))

    def _memory(self, p: np.ndarray, nn: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, str]:
        """A person's decision on a very similar ticket, as a strong vote (see ``memory_quantile``)."""
        if self.memory_line is None:
            return p, ""
        for j, s in zip(nn, sims, strict=False):
            if s < self.memory_line:
                break
            if self.index.verified[j]:
                lab = self.index.labels[j]
                post = combine(p, range(len(p)), self.taxonomy.labels.index(lab), self.settings.memory_accuracy)
                return post, (f"решение оператора по похожему обращению «{self.index.texts[j][:60]}» "
                              f"(сходство {s:.2f}): {self.taxonomy.title(lab)}")
        return p, ""

    # ---- prediction --------------------------------------------------------------------------
    def classify_many(self, texts: Sequence[str], metadata: Sequence[dict[str, Any]] | None = None,
                      ticket_ids: Sequence[str] | None = None, *, method: str | None = None,
                      progress: Callable[[int], None] | None = None) -> list[Classification]:
        t0 = time.perf_counter()
        method = method or self.settings.method
        prepared = [prepare(t) for t in texts]
        for raw, prep in zip(texts, prepared, strict=True):
            if not prep:
                raise InputError(f"empty ticket text: {raw!r}")
        if not self.taxonomy.labels:
            raise InputError("the taxonomy has no categories")
        vectors = embed_texts(self.embedder, prepared)
        labels = self.taxonomy.labels
        if method == "knn" or not len(self.index.y):
            uniform = np.full((len(texts), len(labels)), 1.0 / len(labels))
            knn = self.index.knn.predict_proba(vectors) if len(self.index.y) else uniform
            probs, members = knn, {"knn": knn}
        else:
            probs, members = self.model.predict(prepared, vectors, self.index.knn)
        nn_idx, nn_sims = self.index.knn.neighbours(vectors, k=max(self.settings.k, self.settings.llm_shots))
        out = []
        for i, text in enumerate(texts):
            p = probs[i].copy()
            used = "knn" if method == "knn" else ("ensemble" if len(members) > 1 else "knn")
            llm_note = ""
            p, memory_note = self._memory(p, nn_idx[i], nn_sims[i])
            if memory_note:
                used += "+memory"
            novel = bool(self.novelty_line is not None and len(nn_sims[i]) and nn_sims[i][0] < self.novelty_line)
            # an out-of-scope ticket stays in triage whatever the LLM says: do not ask it
            ask = method == "llm" or (method == "auto" and not novel and float(p.max()) < self.settings.threshold
                                      and self._llm is not None and self._llm_available())
            member_p = {m: v[i] for m, v in members.items()}
            if ask:
                p, llm_note, llm_label = self._ask_llm(prepared[i], p, nn_idx[i], only=method == "llm")
                if llm_label is not None:
                    used = "llm" if method == "llm" else used + "+llm"
                    member_p["llm"] = np.eye(len(labels))[labels.index(llm_label)]
            c = self._result(text, p, member_p, nn_idx[i], nn_sims[i], used,
                             "; ".join(x for x in (memory_note, llm_note) if x), novel)
            c.metadata = dict(metadata[i]) if metadata else {}
            c.ticket_id = ticket_ids[i] if ticket_ids else ""
            out.append(c)
            if progress:
                progress(1)
        per = (time.perf_counter() - t0) * 1000 / max(1, len(texts))
        for c in out:
            c.latency_ms = round(per, 1)
        return out

    def _ask_llm(self, text: str, prior: np.ndarray, nn: np.ndarray, *, only: bool
                 ) -> tuple[np.ndarray, str, str | None]:
        labels = self.taxonomy.labels
        s = self.settings
        order = np.argsort(-prior)
        # offered in taxonomy order, not by the ensemble's ranking: a small model tends to pick the
        # first option, and that must not count as independent agreement
        cand = list(range(len(labels))) if only else sorted(int(j) for j in order[: s.llm_candidates])
        shots = [(self.index.texts[j], self.index.labels[j]) for j in nn[: s.llm_shots]]
        try:
            self.llm_calls += 1
            label, reason = LlmClassifier(self._llm, self.taxonomy).ask(  # type: ignore[arg-type]
                text, [labels[j] for j in cand], shots[::-1])  # nearest shot last, next to the ticket
        except ModelError as e:
            self.llm_errors.append(str(e))
            return prior, f"LLM недоступна: {e.message[:120]}", None
        if label == UNKNOWN:
            return prior, "LLM: ни одна категория не подходит" + (f" ({reason})" if reason else ""), None
        base = np.full_like(prior, 1.0 / len(prior)) if only else prior
        post = combine(base, cand, labels.index(label), s.llm_accuracy)
        return post, f"LLM: {label}" + (f" — {reason}" if reason else ""), label

    def _result(self, text: str, p: np.ndarray, members: dict[str, np.ndarray], nn_idx: np.ndarray,
                nn_sims: np.ndarray, method: str, llm_note: str, novel: bool = False) -> Classification:
        tax, labels, th = self.taxonomy, self.taxonomy.labels, self.settings.threshold
        best = int(p.argmax())
        leaf, leaf_conf = labels[best], float(p[best])
        parent = tax.parent(leaf)
        label, conf = leaf, leaf_conf
        if leaf_conf < th and parent:
            siblings = [labels.index(ch) for ch in tax.node(parent).children]
            parent_conf = float(p[siblings].sum())
            if parent_conf >= th:
                label, conf = parent, parent_conf
        order = np.argsort(-p)[:5]
        candidates = [Candidate(labels[j], tax.title(labels[j]), round(float(p[j]), 4)) for j in order]
        neighbours = [Neighbour(self.index.texts[j], self.index.labels[j], round(float(s), 4))
                      for j, s in zip(nn_idx[:3], nn_sims[:3], strict=False)]
        explanation = self._explain(text, leaf, best, members, nn_idx, llm_note)
        similarity = float(nn_sims[0]) if len(nn_sims) else 0.0
        if novel:
            explanation = (f"не похоже ни на один пример: сходство {similarity:.3f} < {self.novelty_line:.3f}; "
                           + explanation)
        return Classification(
            ticket_id="", text=text, label=label, title=tax.title(label), confidence=round(conf, 4),
            method=method, explanation=explanation, needs_review=bool(conf < th or novel), candidates=candidates,
            neighbours=neighbours, leaf=leaf, leaf_confidence=round(leaf_conf, 4), parent=parent,
            members={m: round(float(v[best]), 4) for m, v in members.items()}, taxonomy=tax.name,
            similarity=round(similarity, 4), novel=novel,
        )

    def _explain(self, text: str, leaf: str, best: int, members: dict[str, np.ndarray], nn_idx: np.ndarray,
                 llm_note: str) -> str:
        parts = []
        k = min(self.settings.k, len(nn_idx))
        if k:
            votes = sum(1 for j in nn_idx[:k] if self.index.labels[j] == leaf)
            closest = self.index.texts[nn_idx[0]]
            parts.append(f"{votes} из {k} ближайших примеров — «{self.taxonomy.title(leaf)}»; "
                         f"ближайший: «{closest[:80]}» ({self.taxonomy.title(self.index.labels[nn_idx[0]])})")
        if "logreg" in members:
            parts.append(f"регрессия по эмбеддингам: {members['logreg'][best]:.2f}")
        if "tfidf" in members:
            terms = self.model.tfidf_terms(prepare(text), best)
            parts.append(f"слова: {', '.join(terms)}" if terms else f"TF-IDF: {members['tfidf'][best]:.2f}")
        if llm_note:
            parts.append(llm_note)
        return "; ".join(parts) or "нет размеченных примеров"
