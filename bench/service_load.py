"""The HTTP service under concurrent load on loopback: requests/s and p50/p95 latency of
``/v1/search`` and ``/v1/ask`` (extractive), beside the in-process baseline measured in the same
run (``app.search`` / ``app.answer`` called directly, no HTTP, no auth, one at a time).

``spravka serve`` runs in a subprocess (uvicorn, one process); an httpx async client keeps
``--concurrency`` requests in flight for ``--seconds`` per endpoint, cycling through the golden
questions of the sample knowledge base. The query-embedding cache and the answer cache are off on
both sides, so every request embeds its question and runs the pipeline (``--answer-cache`` turns
the answer cache on, to see the service with it). Client and server share this machine's cores: the figures are a
floor for a dedicated server.

    python -m bench.service_load [--embedder e5|use] [--concurrency 8] [--seconds 20] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import RESULTS, markdown_table, read_jsonl, save_result

ROOT = Path(__file__).resolve().parent.parent


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def questions() -> list[str]:
    qs = [r["question"] for r in read_jsonl(ROOT / "samples" / "golden" / "kb.jsonl")]
    qs += [q for q in (ROOT / "samples" / "demo_questions.txt").read_text(encoding="utf-8").splitlines() if q.strip()]
    return qs


def prepare(home: Path, embedder: str, answer_cache: bool = False) -> tuple[str, Any]:
    """The sample KB in ``home`` (incremental: a second run only checks hashes) and a bench key."""
    from spravka.app import Spravka
    from spravka.core.settings import Settings

    sp = Spravka(Settings(home=home, embedder={"provider": embedder, "query_cache": 0},
                          cache={"enabled": answer_cache}))
    report = sp.ingest(ROOT / "samples" / "kb", "default")
    print(f"knowledge base: {report.added + report.updated} indexed, {report.unchanged} unchanged "
          f"({report.seconds:.1f}s)", flush=True)
    for k in sp.keys.list():
        if k.name == "bench":
            sp.keys.revoke(k.id)
    key, _ = sp.keys.create("bench", "user", ["employees"], rate_per_minute=1_000_000)
    return key, sp


def baseline(sp: Any, qs: list[str], seconds: float, min_calls: int = 40) -> dict[str, dict[str, float]]:
    """In-process latency, one call at a time: ``seconds`` per endpoint, and ``min_calls`` at least."""
    from spravka.core.filters import Filter

    flt = Filter(groups=("employees",))
    for q in qs[:5]:  # warm: model, vector snapshot, FTS pages
        sp.answer(q, flt=flt, mode="extractive")
    out = {}
    for name, call in (("search", lambda q: sp.search(q, flt=flt, k=5)),
                       ("ask", lambda q: sp.answer(q, flt=flt, mode="extractive"))):
        lat, i, t0 = [], 0, time.perf_counter()
        while time.perf_counter() < t0 + seconds or len(lat) < min_calls:
            t = time.perf_counter()
            call(qs[i % len(qs)])
            lat.append((time.perf_counter() - t) * 1000)
            i += 1
        wall = time.perf_counter() - t0
        out[name] = {"n": len(lat), "rps": len(lat) / wall, "p50_ms": pct(lat, 0.5), "p95_ms": pct(lat, 0.95)}
    return out


def start_server(home: Path, embedder: str, port: int, answer_cache: bool = False) -> subprocess.Popen:
    # the embedder through the environment: ``--embedder`` would replace the whole [embedder]
    # section, query_cache included
    env = {**os.environ, "SPRAVKA_EMBEDDER__PROVIDER": embedder, "SPRAVKA_EMBEDDER__QUERY_CACHE": "0",
           "SPRAVKA_CACHE__ENABLED": "true" if answer_cache else "false", "SPRAVKA_HOME": str(home)}
    cmd = [sys.executable, "-m", "spravka", "--data-dir", str(home), "serve",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not become ready in 180 s")


async def load(url: str, key: str, path: str, body_of, qs: list[str], concurrency: int, seconds: float) -> dict:
    lat: list[float] = []
    server_ms: list[float] = []
    codes: dict[int, int] = {}
    errors = 0
    counter = {"i": 0}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                 timeout=60) as client:
        t_end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < t_end:
                q = qs[counter["i"] % len(qs)]
                counter["i"] += 1
                t = time.perf_counter()
                try:
                    r = await client.post(path, json=body_of(q))
                    codes[r.status_code] = codes.get(r.status_code, 0) + 1
                    if r.status_code == 200:
                        lat.append((time.perf_counter() - t) * 1000)
                        server_ms.append(float(r.json().get("timings_ms", {}).get("total_ms", 0.0)))
                    else:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"n": len(lat), "rps": len(lat) / wall, "p50_ms": pct(lat, 0.5), "p95_ms": pct(lat, 0.95),
            "server_p50_ms": pct(server_ms, 0.5), "errors": errors, "codes": codes, "concurrency": concurrency}


def run(embedder: str = "e5", concurrency: int = 8, seconds: float = 20.0, port: int = 8765,
        answer_cache: bool = False) -> dict:
    from spravka.api.server import free_port

    home = RESULTS / f"service-home-{embedder}"
    qs = questions()
    key, sp = prepare(home, embedder, answer_cache)
    base = baseline(sp, qs, min(seconds, 10.0))
    sp.close()
    port = port or free_port()
    proc = start_server(home, embedder, port, answer_cache)
    url = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {"embedder": embedder, "answer_cache": answer_cache, "questions": len(qs), "baseline_in_process": base, "http": {},
                               "cpus": os.cpu_count(), "loadavg_before": os.getloadavg()}
    try:
        endpoints = {
            "search": ("/v1/search", lambda q: {"query": q, "k": 5}),
            "ask": ("/v1/ask", lambda q: {"question": q, "mode": "extractive"}),
        }
        for name, (path, body_of) in endpoints.items():
            for c in (1, concurrency):
                r = asyncio.run(load(url, key, path, body_of, qs, c, seconds))
                results["http"][f"{name} c={c}"] = r
                print(f"{name:6} c={c:<3} {r['rps']:6.1f} req/s  p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms"
                      f"  (pipeline p50 {r['server_p50_ms']:.1f} ms)  errors {r['errors']}  (in-process: {base[name]['rps']:.1f}/s, p50 {base[name]['p50_ms']:.1f} ms,"
                      f" p95 {base[name]['p95_ms']:.1f} ms)", flush=True)
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        results["loadavg_after"] = os.getloadavg()
        results["server_requests"] = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                                         if line.startswith("spravka_http_requests_total{"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    rows = []
    for label, r in results["http"].items():
        name = label.split()[0]
        b = base[name]
        rows.append({"endpoint": label, "req/s": round(r["rps"], 1), "p50 ms": round(r["p50_ms"], 1),
                     "p95 ms": round(r["p95_ms"], 1), "errors": r["errors"],
                     "in-process req/s": round(b["rps"], 1), "in-process p50 ms": round(b["p50_ms"], 1),
                     "in-process p95 ms": round(b["p95_ms"], 1)})
    results["table"] = markdown_table(rows, list(rows[0]))
    print("\n" + results["table"])
    print(f"cores {results['cpus']}, load average before {results['loadavg_before'][0]:.1f}, "
          f"after {results['loadavg_after'][0]:.1f} (other processes share these cores)")
    save_result(f"service_load-{embedder}", results)
    return results


def suite(quick: bool = False) -> list[dict]:
    """Rows for ``python -m bench`` (quick: the fast embedder and shorter phases)."""
    r = run("use" if quick else "e5", concurrency=8, seconds=8.0 if quick else 20.0)
    base = r["baseline_in_process"]
    out = []
    for name in ("search", "ask"):
        h = r["http"][f"{name} c=8"]
        out.append({"bench": f"service_load {name} ({r['embedder']}, 8 concurrent)", "metric": "req/s · p50/p95 ms",
                    "value": f"{h['rps']:.1f} · {h['p50_ms']:.0f}/{h['p95_ms']:.0f}",
                    "baseline": "in-process, sequential",
                    "baseline_value": f"{base[name]['rps']:.1f} · {base[name]['p50_ms']:.0f}/{base[name]['p95_ms']:.0f}",
                    "target": "0 errors" if h["errors"] == 0 else f"{h['errors']} errors"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", default="e5", choices=["e5", "use"])
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="the fast embedder, 8 s per phase")
    ap.add_argument("--answer-cache", action="store_true", help="serve repeated questions from the answer cache")
    args = ap.parse_args()
    if args.quick:
        args.embedder, args.seconds = "use", 8.0
    run(args.embedder, args.concurrency, args.seconds, args.port, args.answer_cache)


if __name__ == "__main__":
    main()
