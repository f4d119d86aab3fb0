"""Hybrid search.

``question → normalise → embed + analyse → dense and lexical candidates (filters inside the
index query) → fuse → top k``

Fusion is a weighted sum of per-query standardised scores (z-scores over every chunk the filter
allows). Unlike reciprocal rank fusion it keeps *how much* better a candidate is, and unlike raw
score mixing it does not care that cosine lives in [-1, 1] while BM25 is unbounded. RRF stays
available (``search.fusion = "rrf"``). Three signals:

* ``dense``: cosine of the question and the chunk vector (chunk text with its title/heading);
* ``title``: cosine of the question and the title/heading vector, which is what a short FAQ
  question or a manual's section name is most like;
* ``lexical``: BM25 over lemmas, title column boosted, so exact names, numbers and article codes
  count; query terms the collection lacks also match terms one edit away (typos).

The best ``rescore_depth`` candidates are then re-scored with a fourth signal, ``chars``:
character n-gram similarity of the question and the title, which survives misspellings and
glued words (:mod:`spravka.search.charsim`).

A passage whose text is the same as a better-ranked one (the same FAQ entry filed under two
topics; case, punctuation and look-alike letters aside) does not take a place of its own: it is
folded into that hit, whose ``duplicates`` name the other documents (``collapse_duplicates``);
every copy among the re-scored candidates is named, also one that ranks below the k-th place.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spravka.core.errors import InputError
from spravka.core.filters import Filter
from spravka.core.settings import SearchSettings
from spravka.core.text.lemmas import analyze
from spravka.core.text.normalize import normalize_query, passage_key
from spravka.core.types import Hit, SearchResult
from spravka.models.embedder import CachedEmbedder
from spravka.search.charsim import title_similarity
from spravka.store.base import DenseCandidates, LexicalCandidates, SearchIndex

MODES = ("hybrid", "dense", "lexical")


@dataclass(slots=True)
class _Cand:
    id: int
    content: float | None = None
    title: float | None = None
    lexical: float = 0.0
    fused: float = 0.0


class HybridSearcher:
    def __init__(self, index: SearchIndex, embedder: CachedEmbedder, settings: SearchSettings) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings

    def search(
        self,
        query: str,
        *,
        collection: str,
        k: int | None = None,
        flt: Filter | None = None,
        mode: str = "hybrid",
        weights: dict[str, float] | None = None,
        max_per_doc: int | None = None,
        collapse: bool | None = None,
    ) -> SearchResult:
        if mode not in MODES:
            raise InputError(f"unknown search mode '{mode}'", hint="use " + ", ".join(MODES))
        text = normalize_query(query)
        if not text:
            raise InputError("the question is empty")
        if len(text) > 4000:
            text = text[:4000]
        s = self.settings
        k = k or s.k
        flt = flt or Filter()
        w = dict(s.weights)
        w.update(weights or {})
        if mode == "dense":
            w["lexical"] = 0.0
        elif mode == "lexical":
            w["dense"] = w["title"] = 0.0
        timings: dict[str, float] = {}
        t0 = time.perf_counter()

        lexical = LexicalCandidates([], [])
        if w.get("lexical", 0) > 0:
            t = time.perf_counter()
            lexical = self.index.search_lexical(collection, analyze(text), s.candidates, flt, s.title_boost, s.fuzzy)
            timings["lexical_ms"] = _ms(t)
        dense = DenseCandidates([], [], [])
        if w.get("dense", 0) > 0 or w.get("title", 0) > 0:
            t = time.perf_counter()
            qvec = self.embedder.embed_query(text)
            timings["embed_ms"] = _ms(t)
            t = time.perf_counter()
            dense = self.index.search_dense(collection, qvec, s.candidates, flt, w.get("title", 0.0), include=lexical.ids)
            timings["dense_ms"] = _ms(t)

        t = time.perf_counter()
        cands = self._fuse(dense, lexical, w, mode)
        ranked = sorted(cands, key=lambda c: c.fused, reverse=True)
        if mode == "lexical":
            ranked = [c for c in ranked if c.lexical > 0]
        collapse = s.collapse_duplicates if collapse is None else collapse
        hits = self._materialise(collection, text, ranked, k, max_per_doc, w.get("chars", 0.0), collapse)
        timings["fuse_ms"] = _ms(t)
        timings["total_ms"] = _ms(t0)
        return SearchResult(query=text, collection=collection, hits=hits, timings_ms=timings)

    def _fuse(self, dense: DenseCandidates, lexical: LexicalCandidates, w: dict[str, float], mode: str) -> list[_Cand]:
        cands: dict[int, _Cand] = {}
        for i, content, title in zip(dense.ids, dense.content, dense.title, strict=True):
            cands[i] = _Cand(i, content, title)
        lex = dict(zip(lexical.ids, lexical.scores, strict=True))
        lex_floor = 0.0 if lexical.complete or not lexical.scores else min(lexical.scores)
        for i in lexical.ids:
            cands.setdefault(i, _Cand(i))
        for c in cands.values():
            c.lexical = lex.get(c.id, lex_floor)
        if not cands:
            return []
        n_allowed = max(dense.content_stats.count, len(cands))
        if self.settings.fusion == "rrf" and mode == "hybrid":
            self._rrf(list(cands.values()), w)
            return list(cands.values())
        # Lexical stats over all allowed chunks: unlisted ones score 0 (or at most the floor).
        scores = np.asarray(lexical.scores, dtype=np.float64)
        rest = n_allowed - len(scores)
        mean = (scores.sum() + rest * lex_floor) / n_allowed if n_allowed else 0.0
        var = ((scores**2).sum() + rest * lex_floor**2) / n_allowed - mean**2 if n_allowed else 0.0
        lstd = math.sqrt(var) if var > 1e-12 else 1.0
        cm, cs = dense.content_stats.mean, dense.content_stats.std
        tm, ts = dense.title_stats.mean, dense.title_stats.std
        dmin = min(dense.content) if dense.content else 0.0
        tmin = min(dense.title) if dense.title else 0.0
        for c in cands.values():
            zd = ((c.content if c.content is not None else dmin) - cm) / cs
            zt = ((c.title if c.title is not None else tmin) - tm) / ts
            zl = (c.lexical - mean) / lstd
            c.fused = w.get("dense", 0.0) * zd + w.get("title", 0.0) * zt + w.get("lexical", 0.0) * zl
        return list(cands.values())

    def _rrf(self, cands: list[_Cand], w: dict[str, float]) -> None:
        k = self.settings.rrf_k
        for name, key in (("dense", lambda c: c.content), ("title", lambda c: c.title), ("lexical", lambda c: c.lexical)):
            weight = w.get(name, 0.0)
            if weight <= 0:
                continue
            present = [c for c in cands if key(c) is not None and (name != "lexical" or c.lexical > 0)]
            for rank, c in enumerate(sorted(present, key=key, reverse=True), start=1):
                c.fused += weight / (k + rank)

    def _materialise(
        self, collection: str, text: str, ranked: Sequence[_Cand], k: int, max_per_doc: int | None, w_chars: float,
        collapse: bool,
    ) -> list[Hit]:
        """Fetch the best candidates, re-score them with title n-grams, keep the top ``k``."""
        depth = max(self.settings.rescore_depth, k * 3)
        head = list(ranked[:depth])
        found = self.index.fetch(collection, [c.id for c in head])
        head = [c for c in head if c.id in found]
        chars: dict[int, float] = {}
        if w_chars > 0 and len(head) > 1:
            sims = np.asarray(title_similarity(text, [_title_of(found[c.id]) for c in head]))
            z = (sims - sims.mean()) / (sims.std() or 1.0)
            for c, s_, z_ in zip(head, sims, z, strict=True):
                chars[c.id] = float(s_)
                c.fused += w_chars * float(z_)
            head.sort(key=lambda c: c.fused, reverse=True)
        out: list[Hit] = []
        per_doc: dict[str, int] = {}
        shown: dict[str, list[Hit]] = {}  # by title and heading: the text is compared only within one
        body: dict[str, str] = {}

        def text_key(h: Hit) -> str:
            if h.chunk_id not in body:
                body[h.chunk_id] = passage_key(h.text)
            return body[h.chunk_id]

        for cand in head:
            hit = found[cand.id]
            key = passage_key(hit.title, hit.heading) if collapse else ""
            same = next((h for h in shown.get(key, ()) if text_key(h) == text_key(hit)), None) if key else None
            if same is not None:
                if hit.doc_id != same.doc_id and hit.doc_id not in same.duplicates:
                    same.duplicates.append(hit.doc_id)
                continue
            if len(out) >= k:  # full: the rest of the head only names copies of what is shown
                continue
            if max_per_doc is not None:
                if per_doc.get(hit.doc_id, 0) >= max_per_doc:
                    continue
                per_doc[hit.doc_id] = per_doc.get(hit.doc_id, 0) + 1
            hit.score = float(cand.fused)
            hit.signals = {k_: round(float(v), 4) for k_, v in (
                ("dense", cand.content), ("title", cand.title), ("lexical", cand.lexical),
                ("chars", chars.get(cand.id))) if v is not None}
            hit.rank = len(out) + 1
            if key:
                shown.setdefault(key, []).append(hit)
            out.append(hit)
            if len(out) >= k and not collapse:
                break
        return out


def _title_of(hit: Hit) -> str:
    return f"{hit.title} {hit.heading}".strip() if hit.heading != hit.title else hit.title


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 2)
