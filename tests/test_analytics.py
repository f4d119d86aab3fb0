"""The query log and its reports: clustering in numpy, figures, CSV, retention, the CLI, and
the cluster actions (golden set, KB draft)."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spravka.analytics.actions import add_to_golden, draft_kb_entry
from spravka.analytics.clusters import cluster_vectors
from spravka.analytics.querylog import load_rows
from spravka.analytics.service import analyze
from spravka.app import Spravka
from spravka.core.filters import Filter
from spravka.core.settings import Settings

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "kb" / "customers"
PUBLIC = Filter(groups=("public",))
#: a replayed log: three unanswerable topics asked in several ways, and answerable questions
UNANSWERED = {
    "drones": ["Есть ли у вас доставка дронами?", "Вы доставляете заказы дронами?",
               "Можно ли заказать доставку дроном?", "Доставляете ли вы дроном?"],
    "sunday": ["Работает ли магазин в воскресенье?", "Вы работаете по воскресеньям?",
               "Какой у магазина график работы в воскресенье?"],
    "elephants": ["Можно ли купить слона?", "Продаёте ли вы слонов?"],
}
ANSWERED = ["Как оплатить заказ?", "Сколько действует подарочный сертификат?", "Можно ли вернуть товар?"]


def replay_log(sp: Spravka) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {}
    for topic, qs in UNANSWERED.items():
        for q in qs:
            a = sp.answer(q, flt=PUBLIC, caller={"channel": "widget", "role": "user", "key": "k"})
            assert str(a.status) == "refused", q
            ids.setdefault(topic, []).append(a.id)
    for q in ANSWERED:
        a = sp.answer(q, flt=PUBLIC, use_cache=False, caller={"channel": "api", "role": "bot", "key": "k2"})
        assert str(a.status) == "answered", q
        ids.setdefault("answered", []).append(a.id)
    # one answered question is rated down, one up; a refused one is escalated and answered by an operator
    sp.store.log_event("feedback", {"answer_id": ids["answered"][0], "rating": "down", "comment": "не то"})
    sp.store.log_event("feedback", {"answer_id": ids["answered"][1], "rating": "up"})
    item = sp.escalations.create(UNANSWERED["drones"][0], collection="default", answer_id=ids["drones"][0],
                                 contact="a@b.c")
    sp.inbox.resolve(item.id, {"answer": "Дронами не доставляем, только курьером и в пункты выдачи."}, "olga")
    return ids


@pytest.fixture(scope="module")
def log_app(tmp_path_factory):
    kb = tmp_path_factory.mktemp("kb")
    for name in ("payment-methods.md", "returns-policy.md", "gift-certificates.md", "_meta.yaml"):
        (kb / name).write_bytes((SAMPLES / name).read_bytes())
    sp = Spravka(Settings(home=tmp_path_factory.mktemp("home"), answer={"mode": "extractive"}))
    assert sp.ingest(kb, "default").failed == 0
    ids = replay_log(sp)
    yield sp, ids
    sp.close()


def test_threshold_clustering_groups_neighbours_biggest_first():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    pts = np.vstack([c + rng.normal(scale=0.05, size=(n, 16)) for c, n in zip(centres, (5, 3, 1), strict=True)])
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    groups = cluster_vectors(pts, 0.9)
    assert [len(g) for g in groups] == [5, 3, 1]
    assert sorted(i for g in groups for i in g) == list(range(9))
    assert cluster_vectors(np.zeros((0, 4)), 0.9) == []


def test_report_clusters_and_figures_from_a_replayed_log(log_app):
    sp, ids = log_app
    a = analyze(sp, days=7)
    r = a.report
    n = sum(len(v) for v in UNANSWERED.values()) + len(ANSWERED)
    assert r["questions"] == n and r["refused"] == n - len(ANSWERED)
    assert r["feedback"] == {"up": 1, "down": 1, "rated_share": round(2 / n, 4)}
    assert r["latency_ms"]["p50"] > 0 and r["latency_ms"]["p95"] >= r["latency_ms"]["p50"]
    assert r["daily"] and r["daily"][-1]["questions"] == n
    assert r["channels"] == {"widget": n - len(ANSWERED), "api": len(ANSWERED)}
    by_size = [(c.count, set(c.answer_ids)) for c in a.clusters]
    assert by_size[0] == (4, set(ids["drones"]))
    assert (3, set(ids["sunday"])) in by_size and (2, set(ids["elephants"])) in by_size
    rated = next(c for c in a.clusters if ids["answered"][0] in c.answer_ids)
    assert rated.reasons == {"rated_down": 1}
    drones = a.clusters[0]
    assert drones.representative in UNANSWERED["drones"]
    assert drones.operator_answer["answer"].startswith("Дронами не доставляем")
    rows = load_rows(sp.store, days=7)
    assert {r.role for r in rows} == {"user", "bot"} and all(r.normalized for r in rows)


def test_cluster_actions_golden_set_and_draft(log_app, tmp_path):
    sp, ids = log_app
    path, n = add_to_golden(sp.store, tmp_path, ids["drones"])
    assert n == 4 and path == tmp_path / "golden" / "candidates.jsonl"
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert {i["question"] for i in items} == set(UNANSWERED["drones"]) and all(i["review"] for i in items)
    assert add_to_golden(sp.store, tmp_path, ids["drones"])[1] == 0  # appended once
    d = draft_kb_entry(tmp_path, "Есть ли у вас доставка дронами?", answer="Нет, только курьером.",
                       examples=UNANSWERED["drones"], collection="default", source="escalation:x")
    text = d.read_text(encoding="utf-8")
    assert d.parent == tmp_path / "drafts" and text.startswith("---\n") and "# Есть ли у вас доставка дронами?" in text
    assert "Нет, только курьером." in text and "Вы доставляете заказы дронами?" in text


def test_cli_report_json_csv_and_purge(log_app, tmp_path, monkeypatch):
    from spravka.cli import app as cli
    from spravka.cli.base import state

    sp, _ = log_app
    monkeypatch.setattr(state, "_app", sp)
    monkeypatch.setattr(state, "overrides", {})
    out = tmp_path / "log.csv"
    res = CliRunner().invoke(cli, ["report", "--days", "7", "--json", "--csv", str(out)])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout[res.stdout.index("{"):])
    assert body["clusters"][0]["count"] == 4
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == body["questions"] and {"question", "decision", "latency_ms", "rating"} <= set(rows[0])
    res = CliRunner().invoke(cli, ["report", "--days", "7"])
    assert res.exit_code == 0 and "Top clusters" in res.stdout


def test_retention_purges_only_old_query_log_events(tmp_path):
    sp = Spravka(Settings(home=tmp_path, analytics={"retention_days": 30}))
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=40)).isoformat(timespec="seconds")
    for kind in ("answer", "feedback", "key.create"):
        sp.store.log_event(kind, {"x": 1})
        sp.db.execute("UPDATE events SET ts=? WHERE id=(SELECT max(id) FROM events)", (old,))
    sp.store.log_event("answer", {"x": 2})
    assert sp.purge_events() == 2
    kinds = sorted(e["kind"] for e in sp.store.events(limit=10))
    assert kinds == ["answer", "key.create"]  # the audit event stays; the recent answer stays
    sp.close()


def test_chart_labels_show_counts_as_whole_numbers_and_shares_with_decimals():
    import re

    from spravka.evaluate.charts import bar_chart

    counts = bar_chart([("#1", 9), ("#2", 7)], title="clusters")
    shares = bar_chart([("hit@1", 0.85), ("hit@5", 1.0)], title="retrieval", max_value=1.0)
    assert re.findall(r'class="cv">([^<]+)<', counts) == ["9", "7"]
    assert re.findall(r'class="cv">([^<]+)<', shares) == ["0.85", "1.00"]
