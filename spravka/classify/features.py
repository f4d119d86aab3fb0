"""Features for classification: cached sentence embeddings and a small TF-IDF in numpy.

Classification embeds short requests as e5 *queries* (the model card's advice for linear probes
and clustering: symmetric use, ``query:`` prefix). The persistent cache of
:class:`~spravka.models.embedder.CachedEmbedder` only keys passages, so query vectors are stored
in the same cache under ``<model>|query``: a re-run of a benchmark or a retrain never calls the
model for a text it has seen.

:class:`Tfidf` gives word and character n-gram TF-IDF as a CSR matrix held in three numpy arrays
(no scipy): lexical cues (product names, «возврат», "top up") that a small sentence encoder blurs.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from spravka.models.embedder import normalize_rows, text_hash

_WORD = re.compile(r"\w+", re.UNICODE)


def embed_texts(embedder, texts: Sequence[str], progress: Callable[[int], None] | None = None,
                batch_size: int = 64) -> np.ndarray:
    """Unit query vectors for ``texts`` (rows in order), computing only the ones not cached."""
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    cache = getattr(embedder, "cache", None)
    inner = getattr(embedder, "inner", embedder)
    key = f"{embedder.name}|query"
    hashes = [text_hash(t) for t in texts]
    found = cache.get_vectors(key, list(set(hashes))) if cache is not None else {}
    todo: dict[str, str] = {}
    for h, t in zip(hashes, texts, strict=True):
        if h not in found and h not in todo:
            todo[h] = t
    if progress and len(texts) > len(todo):
        progress(sum(1 for h in hashes if h not in todo))
    items = list(todo.items())
    for i in range(0, len(items), batch_size):
        batch = items[i: i + batch_size]
        vecs = normalize_rows(inner.embed_queries([t for _, t in batch]))
        new = list(zip([h for h, _ in batch], vecs, strict=True))
        if cache is not None:
            cache.put_vectors(key, new)
        found.update(new)
        if progress:
            progress(sum(1 for h in hashes if h in dict(batch)))
    return np.stack([found[h] for h in hashes]).astype(np.float32, copy=False)


# ---- sparse matrices without scipy --------------------------------------------------------------
@dataclass
class Csr:
    """Rows of a sparse matrix: ``indices``/``data`` of row ``i`` are ``[indptr[i]:indptr[i+1]]``."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def rows(self, idx: np.ndarray) -> Csr:
        idx = np.asarray(idx)
        starts, ends = self.indptr[idx], self.indptr[idx + 1]
        lengths = ends - starts
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        take = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)]) if len(idx) else \
            np.zeros(0, dtype=np.int64)
        return Csr(indptr, self.indices[take], self.data[take], self.n_cols)

    def transpose(self) -> Csr:
        rows = np.repeat(np.arange(self.n_rows), np.diff(self.indptr))
        order = np.argsort(self.indices, kind="stable")
        counts = np.bincount(self.indices, minlength=self.n_cols)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return Csr(indptr, rows[order], self.data[order], self.n_rows)

    def dot(self, w: np.ndarray, block_nnz: int = 1 << 17) -> np.ndarray:
        """``self @ w`` for a dense ``w`` of shape (n_cols, k), in row blocks of bounded memory."""
        out = np.zeros((self.n_rows, w.shape[1]), dtype=w.dtype)
        lengths = np.diff(self.indptr)
        r0 = 0
        while r0 < self.n_rows:
            # the largest block of rows whose non-zeros fit the budget (at least one row)
            r1 = int(np.searchsorted(self.indptr, self.indptr[r0] + block_nnz, side="right")) - 1
            r1 = min(max(r1, r0 + 1), self.n_rows)
            a, b = self.indptr[r0], self.indptr[r1]
            if b > a:
                prod = self.data[a:b, None] * w[self.indices[a:b]]
                nz = lengths[r0:r1] > 0
                out[r0:r1][nz] = np.add.reduceat(prod, self.indptr[r0:r1][nz] - a, axis=0)
            r0 = r1
        return out


def _ngrams(text: str, word_ngrams: int, char_ngrams: tuple[int, int] | None, lemmatize: bool = False) -> list[str]:
    low = text.lower().replace("ё", "е")
    words = _WORD.findall(low)
    if lemmatize:
        from spravka.core.text.lemmas import lemma

        words = [lemma(w) for w in words]
    feats = [f"w:{w}" for w in words]
    for n in range(2, word_ngrams + 1):
        feats += ["w:" + " ".join(words[i: i + n]) for i in range(len(words) - n + 1)]
    if char_ngrams:
        lo, hi = char_ngrams
        for w in words:
            padded = f" {w} "
            for n in range(lo, hi + 1):
                feats += [f"c:{padded[i: i + n]}" for i in range(max(1, len(padded) - n + 1))]
    return feats


class Tfidf:
    """Sublinear TF-IDF over word (and optionally character) n-grams, rows L2-normalised."""

    def __init__(self, word_ngrams: int = 2, char_ngrams: tuple[int, int] | None = (2, 5), min_df: int = 2,
                 max_features: int = 200_000, lemmatize: bool = False) -> None:
        self.word_ngrams = word_ngrams
        self.lemmatize = lemmatize
        self.char_ngrams = char_ngrams
        self.min_df = min_df
        self.max_features = max_features
        self.vocab: dict[str, int] = {}
        self.idf = np.zeros(0)

    def fit(self, texts: Sequence[str]) -> Tfidf:
        df: Counter[str] = Counter()
        for t in texts:
            df.update(set(_ngrams(t, self.word_ngrams, self.char_ngrams, self.lemmatize)))
        kept = [(f, c) for f, c in df.items() if c >= self.min_df]
        kept.sort(key=lambda fc: (-fc[1], fc[0]))
        kept = kept[: self.max_features]
        self.vocab = {f: i for i, (f, _) in enumerate(kept)}
        n = len(texts)
        self.idf = np.array([math.log((1 + n) / (1 + c)) + 1.0 for _, c in kept])
        return self

    def feature_names(self) -> list[str]:
        names = [""] * len(self.vocab)
        for f, i in self.vocab.items():
            names[i] = f
        return names

    def transform(self, texts: Sequence[str]) -> Csr:
        indptr, indices, data = [0], [], []
        for t in texts:
            counts = Counter(self.vocab[f] for f in _ngrams(t, self.word_ngrams, self.char_ngrams, self.lemmatize) if f in self.vocab)
            cols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            vals = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * self.idf[cols]
            norm = float(np.linalg.norm(vals))
            if norm > 0:
                vals = vals / norm
            indices.append(cols)
            data.append(vals)
            indptr.append(indptr[-1] + len(cols))
        return Csr(np.array(indptr, dtype=np.int64),
                   np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64),
                   np.concatenate(data) if data else np.zeros(0), len(self.vocab))
