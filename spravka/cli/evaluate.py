"""``spravka eval``: measure the knowledge base on a golden set."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.progress import Progress
from rich.table import Table

from spravka.cli.base import app, console, out, print_json, state
from spravka.core.filters import parse_filters
from spravka.core.types import DocStatus
from spravka.evaluate.golden import GoldenItem, load_golden
from spravka.evaluate.retrieval import evaluate_retrieval

eval_app = typer.Typer(help="Evaluate on golden sets (retrieval; answers and reports come with later commands).",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("retrieval")
def eval_retrieval(
    golden: Path = typer.Option(..., "--golden", "-g", help="Golden set JSONL."),
    collection: str | None = typer.Option(None, "--collection", "-c"),
    k: int = typer.Option(10, "--k"),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, dense or lexical."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object with the metrics."),
    details: bool = typer.Option(False, "--details", help="With --json: include per-question results."),
) -> None:
    """hit@1/3/5/10, recall, MRR@10, nDCG@10 and latency on the answerable golden questions."""
    sp = state.spravka()
    name = collection or sp.settings.collection
    sp.check_collection(name)
    items = load_golden(golden)
    aliases = {d.id: d.duplicate_of for d in sp.store.list_documents(name, DocStatus.DUPLICATE) if d.duplicate_of}

    def run(item: GoldenItem):
        flt = parse_filters(item.filters, item.groups)
        t = time.perf_counter()
        result = sp.searcher.search(item.question, collection=name, flt=flt, k=k * 3, mode=mode)
        ms = (time.perf_counter() - t) * 1000
        top = [{"doc_id": h.doc_id, "chunk_id": h.chunk_id, "score": round(h.score, 4)} for h in result.hits[:5]]
        return [h.doc_id for h in result.hits], ms, top

    sp.embedder.embed_query("прогрев модели")  # load the model before timing
    answerable = sum(1 for i in items if i.answerable)
    with Progress(console=console, disable=json_out) as bar:
        task = bar.add_task("questions", total=answerable)
        summary, results = evaluate_retrieval(items, run, aliases, progress=lambda: bar.advance(task))
    summary = {"collection": name, "mode": mode, **summary}
    if json_out:
        print_json(summary | ({"questions": results} if details else {}))
        return
    t = Table(title=f"retrieval on {golden.name} ({summary['n']} answerable questions)")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for key, value in summary.items():
        if key not in ("collection", "mode"):
            t.add_row(key, str(value))
    out.print(t)
    misses = [r for r in results if not r.first_rank or r.first_rank > 5]
    if misses:
        m = Table(title="not in the top 5")
        for col in ("id", "question", "expected", "got"):
            m.add_column(col, overflow="fold")
        for r in misses[:20]:
            m.add_row(r.id, r.question[:80], ", ".join(r.expected), ", ".join(r.ranked_docs[:3]))
        out.print(m)
