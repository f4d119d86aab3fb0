"""Ingest throughput and search latency at 10k and 100k chunks, on this machine.

For each size the same run measures:
* the bare embedder: seconds to embed a random sample of the very texts the pipeline embeds
  (chunk texts with their title/heading, and the title vectors), in the pipeline's batch size;
* the whole pipeline on a cold data directory: load Markdown → clean → chunk → embed → SQLite,
  FTS5 and vectors, one transaction per document;
* "embedder-bound" = (bare seconds per text × texts embedded) / pipeline seconds, so 1.0 means
  the pipeline costs nothing beyond the model (target ≥ 0.90);
* search latency over real user questions (RUTUBE), query embedding included, no query cache:
  p50/p95 for hybrid search (target p95 ≤ 150 ms at 100k chunks).

multilingual-e5-small embeds about 15 chunks/s on two cores, so building 100k chunks with it
takes about two hours. By default the 10k corpus uses e5 (the product default) and the 100k
corpus uses the fast USE model, as the issue allows; the e5 query-embedding cost is printed
separately so the 100k latency can be read for e5 too.

    python -m bench.scale [--sizes 10000,100000] [--embedders e5,use] [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, make_app, markdown_table, read_jsonl, save_result, shared_data
from spravka.core.filters import Filter, parse_filters
from spravka.ingest.pipeline import title_text, walk

ROOT = Path(__file__).resolve().parent.parent


def sentence_pool() -> list[str]:
    """Real Russian support prose: FAQ answers (RUTUBE, VTB) and the sample knowledge base."""
    data = shared_data()
    texts = [r["answer"] for r in read_jsonl(data / "rutube-support-faq" / "knowledge_base.jsonl")]
    texts += [r["answer"] for r in read_jsonl(data / "vtb-belarus-support-faq" / "faq.jsonl")]
    for p in (ROOT / "samples" / "kb").rglob("*.md"):
        texts.append(p.read_text(encoding="utf-8"))
    pool = []
    for t in texts:
        for s in re.split(r"(?<=[.!?])\s+|\n+", t):
            s = s.strip(" -#*|")
            if 40 <= len(s) <= 300:
                pool.append(s)
    return sorted(set(pool))


def build_corpus(folder: Path, target_chunks: int, seed: int = 0) -> None:
    """Markdown documents of 3 sections × ~5 chunks; every sentence gets a document-specific number,
    so no chunk repeats (nothing is deduplicated or served from the embedding cache)."""
    rnd = random.Random(seed)
    pool = sentence_pool()
    folder.mkdir(parents=True, exist_ok=True)
    per_doc = 15  # measured: three sections of ~5 chunks
    n_docs = max(1, target_chunks // per_doc)
    depts = ["customers", "hr", "it", "finance", "logistics"]
    for i in range(n_docs):
        dept = depts[i % len(depts)]
        parts = [f"---\ntitle: Регламент {i} ({dept})\ndepartment: {dept}\ndoc_type: policy\nversion: '{1 + i % 3}'\n"
                 f"date: 202{i % 5}-0{1 + i % 9}-1{i % 10}\n---\n"]
        for sec in range(3):
            parts.append(f"\n## Раздел {sec + 1}: {rnd.choice(pool)[:60]}\n\n")
            sents = []
            for _ in range(14):
                s = rnd.choice(pool)
                sents.append(f"{s.rstrip('.')} (п. {i}.{sec}.{len(sents) + 1}).")
            parts.append(" ".join(sents) + "\n")
        sub = folder / dept / f"{i // 500:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"doc-{i:06d}.md").write_text("".join(parts), encoding="utf-8")


def embed_texts(app, folder: Path) -> list[str]:
    """The exact texts the pipeline embeds for this corpus (chunks and titles)."""
    from spravka.core.types import Document
    from spravka.ingest.loaders import load_file
    from spravka.ingest.metadata import MetadataResolver
    from spravka.ingest.pipeline import _finalise

    resolver = MetadataResolver(folder)
    texts: list[str] = []
    for f in walk(folder):
        fmt, res = load_file(f)
        raw = res.docs[0]
        title, groups, meta = resolver.resolve(f, raw.metadata, fmt)
        doc = _finalise(Document(id=f.name, title=title or raw.title, sections=raw.sections, metadata=meta,
                                 access_groups=groups, format=fmt))
        chunks = app.chunker.chunk(doc)
        texts += [c.embed_text() for c in chunks]
        texts += list(dict.fromkeys(title_text(doc.title, c.heading) for c in chunks))
    return texts


def measure(size: int, embedder: str, queries: list[str], sample: int) -> dict:
    work = RESULTS / f"scale-{embedder}-{size}"
    shutil.rmtree(work, ignore_errors=True)
    corpus = work / "corpus"
    t = time.perf_counter()
    build_corpus(corpus, size)
    gen_s = time.perf_counter() - t

    probe = make_app(work / "probe", embedder={"provider": embedder})
    texts = embed_texts(probe, corpus)
    rnd = random.Random(1)
    picked = rnd.sample(texts, min(sample, len(texts)))
    bs = probe.settings.embedder.batch_size
    inner = probe.embedder.inner
    inner.embed_passages(picked[:8])  # warm up
    t = time.perf_counter()
    for i in range(0, len(picked), bs):
        inner.embed_passages(picked[i : i + bs])
    bare_per_text = (time.perf_counter() - t) / len(picked)
    probe.close()

    app = make_app(work / "home", embedder={"provider": embedder, "query_cache": 0})
    t = time.perf_counter()
    report = app.ingest(corpus, "scale")
    ingest_s = time.perf_counter() - t
    embedded = report.embedded
    bound = bare_per_text * embedded / ingest_s

    app.searcher.search("прогрев", collection="scale", k=5)  # load snapshot and model
    lat = []
    flt_lat = []
    hr = parse_filters(["department=hr"], ["employees"])
    for q in queries:
        t = time.perf_counter()
        app.searcher.search(q, collection="scale", k=10, flt=Filter())
        lat.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        app.searcher.search(q, collection="scale", k=10, flt=hr)
        flt_lat.append((time.perf_counter() - t) * 1000)
    embed_ms = []
    for q in queries[:100]:
        t = time.perf_counter()
        app.embedder.inner.embed_queries([q])
        embed_ms.append((time.perf_counter() - t) * 1000)
    app.close()
    return {
        "embedder": embedder, "target_chunks": size, "chunks": report.chunks, "documents": report.added,
        "texts_embedded": embedded, "corpus_gen_s": round(gen_s, 1), "ingest_s": round(ingest_s, 1),
        "pipeline_chunks_per_s": round(report.chunks / ingest_s, 1),
        "pipeline_texts_per_s": round(embedded / ingest_s, 1),
        "bare_embedder_texts_per_s": round(1 / bare_per_text, 1),
        "embedder_bound": round(bound, 3),
        "search_p50_ms": round(float(np.percentile(lat, 50)), 1), "search_p95_ms": round(float(np.percentile(lat, 95)), 1),
        "filtered_p50_ms": round(float(np.percentile(flt_lat, 50)), 1),
        "filtered_p95_ms": round(float(np.percentile(flt_lat, 95)), 1),
        "query_embed_p50_ms": round(float(np.percentile(embed_ms, 50)), 1),
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--embedders", default="e5,use", help="one per size, in order")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--sample", type=int, default=1500, help="texts for the bare-embedder baseline")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    embedders = args.embedders.split(",")
    embedders += [embedders[-1]] * (len(sizes) - len(embedders))
    cases = read_jsonl(shared_data() / "rutube-support-faq" / "cases.dev.jsonl")
    queries = [c["user_question"] for c in cases][: args.queries]
    rows = []
    for size, emb in zip(sizes, embedders, strict=False):
        print(f"… {size} chunks with {emb}", flush=True)
        rows.append(measure(size, emb, queries, args.sample))
        print(markdown_table(rows[-1:], list(rows[-1])), flush=True)
    cols = ["embedder", "chunks", "ingest_s", "pipeline_chunks_per_s", "pipeline_texts_per_s",
            "bare_embedder_texts_per_s", "embedder_bound", "search_p50_ms", "search_p95_ms", "filtered_p95_ms",
            "query_embed_p50_ms"]
    print("\nScale (pipeline vs bare embedder in the same run; latency includes the query embedding)\n")
    print(markdown_table(rows, cols))
    for r in rows:
        print(f"- {r['chunks']} chunks ({r['embedder']}): embedder-bound {r['embedder_bound']:.2f} "
              f"(target ≥ 0.90); hybrid p95 {r['search_p95_ms']} ms (target ≤ 150 ms at 100k)")
    # Rows of sizes not rerun this time are kept from the last run (each row says when it ran).
    previous = RESULTS / "scale.json"
    kept = []
    if previous.exists():
        done = {(r["embedder"], r["target_chunks"]) for r in rows}
        kept = [r for r in json.loads(previous.read_text()).get("rows", [])
                if (r["embedder"], r["target_chunks"]) not in done and r.get("measured_at")]
    print("saved", save_result("scale", {"rows": kept + rows}))


if __name__ == "__main__":
    main()


def suite(quick: bool = False) -> list[dict]:
    """Rows for ``python -m bench`` (quick: 2k chunks with USE only)."""
    cases = read_jsonl(shared_data() / "rutube-support-faq" / "cases.dev.jsonl")
    queries = [c["user_question"] for c in cases][:200]
    plan = [(2000, "use")] if quick else [(10000, "e5"), (100000, "use")]
    out = []
    for size, emb in plan:
        r = measure(size, emb, queries, 1000)
        name = f"scale {r['chunks']} chunks ({emb})"
        out.append({"bench": name, "metric": "pipeline texts/s", "value": r["pipeline_texts_per_s"],
                    "baseline": "bare embedder texts/s", "baseline_value": r["bare_embedder_texts_per_s"],
                    "target": "ratio >= 0.90"})
        out.append({"bench": name, "metric": "hybrid search p95 ms", "value": r["search_p95_ms"],
                    "baseline": "query embedding p50 ms", "baseline_value": r["query_embed_p50_ms"],
                    "target": "<= 150 ms at 100k" if size >= 100000 else ""})
    return out
