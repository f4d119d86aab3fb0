"""Lexical helpers shared by every backend: typo-tolerant vocabularies cached per generation, and
an in-memory BM25 index scored exactly like SQLite FTS5."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class Vocabulary:
    """A collection's lexical vocabulary with a one-edit neighbourhood, for typo tolerance.

    Support questions are typed in a hurry («пренадлежат», «приложеиии»). A query term that the
    collection does not contain is expanded with the terms one edit away (SymSpell-style delete
    neighbourhoods: a deletion on both sides covers insertions, deletions and substitutions).
    """

    MIN_LEN = 5

    def __init__(self, terms: Iterable[str]) -> None:
        self.terms = set(terms)
        self._deletes: dict[str, list[str]] | None = None

    @staticmethod
    def _variants(word: str) -> set[str]:
        return {word[:i] + word[i + 1 :] for i in range(len(word))} | {word}

    def _index(self) -> dict[str, list[str]]:
        if self._deletes is None:
            idx: dict[str, list[str]] = {}
            for t in self.terms:
                if len(t) >= self.MIN_LEN and not t.isdigit():
                    for v in self._variants(t):
                        idx.setdefault(v, []).append(t)
            self._deletes = idx
        return self._deletes

    def expand(self, terms: Sequence[str]) -> list[str]:
        out: list[str] = []
        for t in terms:
            out.append(t)
            if t in self.terms or len(t) < self.MIN_LEN or t.isdigit():
                continue
            idx = self._index()
            near = {c for v in self._variants(t) for c in idx.get(v, ())}
            out.extend(sorted(near))
        return out


class VocabularyCache:
    """One vocabulary per collection, rebuilt only when the collection's generation moves on."""

    def __init__(self) -> None:
        self._items: dict[Hashable, tuple[int, Vocabulary]] = {}

    def get(self, key: Hashable, generation: int, load: Callable[[], Iterable[str]]) -> Vocabulary:
        cached = self._items.get(key)
        if cached is None or cached[0] != generation:
            cached = (generation, Vocabulary(load()))
            self._items[key] = cached
        return cached[1]

    def drop(self, key: Hashable) -> None:
        self._items.pop(key, None)


#: FTS5's ``unicode61`` token characters as our lemma strings use them (letters and digits)
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
#: FTS5's bm25() constants; every backend's BM25 uses these and :func:`bm25_idf`
K1 = 1.2
B = 0.75


def bm25_idf(n_rows: int, df: int) -> float:
    """FTS5's idf: ``ln((N - df + 0.5) / (df + 0.5))``, floored at 1e-6 for very common terms."""
    idf = math.log((n_rows - df + 0.5) / (df + 0.5)) if n_rows else 0.0
    return idf if idf > 0 else 1e-6


@dataclass
class _Postings:
    """Compressed postings of a block of rows: for each term, the rows holding it and its
    frequency in the title and the body column (CSR layout)."""

    terms: dict[str, int]
    offsets: np.ndarray  # int64 (T+1,)
    rows: np.ndarray  # int32, global row numbers
    tf_title: np.ndarray  # float32
    tf_body: np.ndarray  # float32

    @classmethod
    def build(cls, titles: Sequence[str], bodies: Sequence[str], first_row: int) -> tuple[_Postings, np.ndarray]:
        """Postings for rows ``first_row…`` and each row's length in tokens (both columns)."""
        vocab: dict[str, int] = {}
        get = vocab.setdefault
        flat: list[int] = []
        n_title = np.empty(len(titles), dtype=np.int64)
        n_body = np.empty(len(bodies), dtype=np.int64)
        for i, (title, body) in enumerate(zip(titles, bodies, strict=True)):
            tt = _TOKEN.findall(title or "")
            bt = _TOKEN.findall(body or "")
            flat.extend([get(t, len(vocab)) for t in tt])
            flat.extend([get(t, len(vocab)) for t in bt])
            n_title[i] = len(tt)
            n_body[i] = len(bt)
        n_rows = len(titles)
        lengths = n_title + n_body
        if not flat:
            empty = cls({}, np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.float32))
            return empty, lengths.astype(np.float32)
        term = np.asarray(flat, dtype=np.int64)
        row = np.repeat(np.arange(n_rows, dtype=np.int64), lengths)
        # Within a row the title tokens come first: mark them.
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        in_title = (np.arange(len(term), dtype=np.int64) - starts) < np.repeat(n_title, lengths)
        key = (term * n_rows + row) * 2 + in_title
        uk, cnt = np.unique(key, return_counts=True)
        pair = uk // 2
        upair, inv = np.unique(pair, return_inverse=True)
        tf_title = np.zeros(len(upair), dtype=np.float32)
        tf_body = np.zeros(len(upair), dtype=np.float32)
        is_t = (uk % 2).astype(bool)
        tf_title[inv[is_t]] = cnt[is_t]
        tf_body[inv[~is_t]] = cnt[~is_t]
        p_term = upair // n_rows
        p_row = (upair % n_rows + first_row).astype(np.int32)
        offsets = np.searchsorted(p_term, np.arange(len(vocab) + 1)).astype(np.int64)
        return cls(vocab, offsets, p_row, tf_title, tf_body), lengths.astype(np.float32)

    def get(self, term: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        t = self.terms.get(term)
        if t is None:
            return None
        a, b = self.offsets[t], self.offsets[t + 1]
        return self.rows[a:b], self.tf_title[a:b], self.tf_body[a:b]


class Bm25Index:
    """In-memory BM25 over a collection's lemma columns (title, body), scored exactly as SQLite
    FTS5's ``bm25()`` scores them (same IDF, length normalisation and column weights).

    FTS5 scores every row that matches any query term, row by row, which is 100-200 ms for a
    chatty question at 100k chunks. Here each term costs one vectorised pass over its postings,
    a few milliseconds at 100k. Rows appended after the build go into a delta block and deleted
    rows are masked, so one uploaded document does not force a rebuild.
    """

    #: on-disk layout version (:meth:`save` / :meth:`load`)
    FORMAT = 1

    def __init__(self, ids: np.ndarray, titles: Sequence[str], bodies: Sequence[str]) -> None:
        base, lengths = _Postings.build(titles, bodies, 0)
        self._init(np.asarray(ids, dtype=np.int64), base, lengths)

    def _init(self, ids: np.ndarray, base: _Postings, lengths: np.ndarray) -> None:
        self.ids = ids
        self.base, self.lengths = base, lengths
        self.delta: _Postings | None = None
        self.base_rows = len(self.ids)
        self.alive = np.ones(len(self.ids), dtype=bool)
        self._delta_titles: list[str] = []
        self._delta_bodies: list[str] = []
        self._stats()

    # ---- persistence ---------------------------------------------------------------------
    def save(self, folder: Path, generation: int, owner: str = "") -> None:
        """Write the index as built (the base block) to ``folder``, atomically: a reader sees the
        old folder, no folder, or the new one. Rows that joined later and rows deleted since are
        not written: :meth:`load` plus :meth:`update` replays them from the database. ``owner``
        names the database the index was built from (see :meth:`load`)."""
        if self.delta is not None or not self.alive.all():
            raise ValueError("only a freshly built index is saved (no delta rows, no deleted rows)")
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f".{folder.name}-tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            b = self.base
            for name, arr in (("ids", self.ids), ("lengths", self.lengths), ("offsets", b.offsets), ("rows", b.rows),
                              ("tf_title", b.tf_title), ("tf_body", b.tf_body)):
                np.save(tmp / f"{name}.npy", arr)
            (tmp / "terms.json").write_text(json.dumps(list(b.terms), ensure_ascii=False), encoding="utf-8")
            # state.json goes last: a folder without it is incomplete and never loaded
            (tmp / "state.json").write_text(json.dumps({"format": self.FORMAT, "database": owner, "generation": generation,
                                                        "rows": len(self.ids), "postings": len(b.rows)}))
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # another process's save won the race, or the disk is full
            raise

    def save_or_warn(self, folder: Path, generation: int, owner: str = "") -> None:
        """:meth:`save` as a cache: a read-only or full disk costs the next start a rebuild, no more."""
        try:
            self.save(folder, generation, owner)
        except OSError as e:
            log.warning("could not save the BM25 index to %s: %s", folder, e)

    @classmethod
    def load(cls, folder: Path, owner: str = "") -> tuple[int, Bm25Index] | None:
        """``(generation, index)`` saved by :meth:`save`, or None when there is none, it was built
        from another database (``owner`` differs) or it does not hold together (a partial write,
        another format, damaged files). Postings are memory-mapped,
        so loading costs the term dictionary, not the postings."""
        folder = Path(folder)
        try:
            state = json.loads((folder / "state.json").read_text())
            if state.get("format") != cls.FORMAT or state.get("database") != owner:
                return None
            terms = json.loads((folder / "terms.json").read_text(encoding="utf-8"))
            ids = np.load(folder / "ids.npy")
            lengths = np.load(folder / "lengths.npy")
            offsets = np.load(folder / "offsets.npy")
            rows, tf_title, tf_body = (np.load(folder / f"{n}.npy", mmap_mode="r") for n in ("rows", "tf_title", "tf_body"))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        n_post = int(state.get("postings", -1))
        if (len(ids) != state.get("rows") or len(lengths) != len(ids) or len(offsets) != len(terms) + 1
                or not (len(rows) == len(tf_title) == len(tf_body) == n_post)
                or (len(offsets) and int(offsets[-1]) != n_post) or (len(ids) > 1 and np.any(np.diff(ids) <= 0))):
            return None
        base = _Postings({t: i for i, t in enumerate(terms)}, offsets, rows, tf_title, tf_body)
        index = cls.__new__(cls)
        index._init(ids.astype(np.int64, copy=False), base, lengths.astype(np.float32, copy=False))
        return int(state["generation"]), index

    def _stats(self) -> None:
        self.n_alive = int(self.alive.sum())
        self.avgdl = float(self.lengths[self.alive].sum()) / self.n_alive if self.n_alive else 1.0
        self._norm = (K1 * (1 - B + B * self.lengths / self.avgdl)).astype(np.float32)

    @property
    def max_id(self) -> int:
        return int(self.ids[-1]) if len(self.ids) else 0

    @property
    def delta_rows(self) -> int:
        return len(self.ids) - self.base_rows

    def terms(self) -> list[str]:
        out = list(self.base.terms)
        if self.delta is not None:
            out += [t for t in self.delta.terms if t not in self.base.terms]
        return out

    def update(self, live_ids: np.ndarray, new_ids: np.ndarray, titles: Sequence[str], bodies: Sequence[str]) -> None:
        """Catch up: ``live_ids`` are every chunk id the collection holds now; the new rows
        (ids the index does not hold yet) join the delta block. Ids that arrive out of order
        (PostgreSQL sequences under concurrent writers) are fine here, but then :attr:`max_id`
        is no guide to what is new and the caller diffs id sets instead."""
        if len(new_ids):
            keep_ids = self.ids[: self.base_rows]
            old_delta = self.delta_rows
            # The delta block is rebuilt from its rows each time: it stays small (see needs_rebuild).
            d_titles = [*self._delta_titles, *titles]
            d_bodies = [*self._delta_bodies, *bodies]
            d_ids = np.concatenate([self.ids[self.base_rows :], np.asarray(new_ids, dtype=np.int64)])
            self.delta, d_len = _Postings.build(d_titles, d_bodies, self.base_rows)
            self._delta_titles, self._delta_bodies = d_titles, d_bodies
            self.ids = np.concatenate([keep_ids, d_ids])
            self.lengths = np.concatenate([self.lengths[: self.base_rows], d_len])
            alive_delta = np.ones(len(d_ids), dtype=bool)
            alive_delta[:old_delta] = self.alive[self.base_rows :]
            self.alive = np.concatenate([self.alive[: self.base_rows], alive_delta])
        self.alive &= np.isin(self.ids, np.asarray(live_ids, dtype=np.int64))
        self._stats()

    def needs_rebuild(self, new_rows: int = 0) -> bool:
        """Whether so many rows were added or deleted since the build (plus ``new_rows`` about to
        be) that a rebuild is cheaper than carrying the delta block."""
        dead = len(self.ids) - self.n_alive
        return self.delta_rows + new_rows + dead > max(2000, 0.2 * self.base_rows)

    def search(
        self, terms: Sequence[str], n: int, title_boost: float = 2.0, allowed: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Top ``n`` rows as (chunk ids, scores, complete), best first. ``allowed`` maps chunk
        ids to a bool mask (the filter); the statistics stay collection-wide, as in FTS5."""
        hit, scores = self._matches(terms, title_boost)
        if allowed is not None and hit.size:
            keep = allowed(self.ids[hit])
            hit, scores = hit[keep], scores[keep]
        complete = hit.size <= n
        if not complete:
            top = np.argpartition(-scores, n - 1)[:n]
            hit, scores = hit[top], scores[top]
        order = np.lexsort((self.ids[hit], -scores))
        return self.ids[hit[order]], scores[order], complete

    def ranked(self, terms: Sequence[str], title_boost: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
        """Every row matching any term, best first (ties by chunk id): for a caller that applies
        its filter in pieces, from the top down (the PostgreSQL backend)."""
        hit, scores = self._matches(terms, title_boost)
        order = np.lexsort((self.ids[hit], -scores))
        return self.ids[hit[order]], scores[order]

    def _matches(self, terms: Sequence[str], title_boost: float) -> tuple[np.ndarray, np.ndarray]:
        """(row numbers, BM25 scores) of the live rows matching any term, unordered."""
        uniq: dict[str, None] = {}
        for t in terms:
            for tok in _TOKEN.findall(t):
                uniq[tok] = None
        none = np.zeros(0, np.int64), np.zeros(0, np.float64)
        if not uniq or not self.n_alive:
            return none
        acc = np.zeros(len(self.ids), dtype=np.float64)
        touched = False
        for term in uniq:
            blocks = [p for p in (self.base.get(term), self.delta.get(term) if self.delta else None) if p is not None]
            if not blocks:
                continue
            rows = np.concatenate([b[0] for b in blocks]) if len(blocks) > 1 else blocks[0][0]
            tt = np.concatenate([b[1] for b in blocks]) if len(blocks) > 1 else blocks[0][1]
            tb = np.concatenate([b[2] for b in blocks]) if len(blocks) > 1 else blocks[0][2]
            live = self.alive[rows]
            df = int(live.sum())
            if df == 0:
                continue
            idf = bm25_idf(self.n_alive, df)
            f = title_boost * tt + tb
            acc[rows] += idf * (f * (K1 + 1.0)) / (f + self._norm[rows])
            touched = True
        if not touched:
            return none
        hit = np.flatnonzero(acc)
        hit = hit[self.alive[hit]]
        return hit, acc[hit]
