"""Evaluation: a full run on the sample golden set, the HTML report in a real browser, the
regression gate, calibration, golden-set building, and the offline guarantee."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from browser import chrome, console_errors

from spravka.evaluate.answers import reference_recall
from spravka.evaluate.building import log_candidates
from spravka.evaluate.calibrate import calibrate, cross_validate, decide
from spravka.evaluate.compare import compare_runs
from spravka.evaluate.golden import load_golden
from spravka.evaluate.report import render_comparison, render_run
from spravka.evaluate.runner import EvalRun, run_eval

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def golden(golden_path):
    return load_golden(golden_path)


@pytest.fixture(scope="module")
def run_a(kb_app, golden, golden_path):
    return run_eval(kb_app, golden, collection="default", golden_path=golden_path, mode="extractive")


def test_run_has_every_metric_group(run_a):
    r, a, o = run_a.retrieval, run_a.answers, run_a.operations
    assert r["n"] == 56 and {"hit@1", "hit@5", "recall@5", "mrr@10", "ndcg@10", "p95_ms"} <= set(r)
    assert a["n"] == 85 and a["unanswerable"] == 29
    for key in ("refusal_precision", "refusal_recall", "citation_hit", "groundedness", "similarity",
                "reference_recall"):
        assert 0.0 <= a[key] <= 1.0, key
    assert a["citation_hit"] >= 0.8 and a["groundedness"] >= 0.9  # extractive answers quote their sources
    assert {"total_p50_ms", "total_p95_ms", "retrieve_p95_ms", "tokens_per_question", "cost_per_question"} <= set(o)
    assert len(run_a.questions) == 85 and all("retrieved" in q and "answer" in q for q in run_a.questions)


def test_run_round_trips_through_json(run_a, tmp_path):
    path = run_a.save(tmp_path / "run.json")
    again = EvalRun.load(path)
    assert again.metrics() == run_a.metrics() and again.questions[0]["id"] == run_a.questions[0]["id"]


def test_html_report_renders_charts_without_console_errors(run_a, tmp_path):
    html = tmp_path / "report.html"
    html.write_text(render_run(run_a), encoding="utf-8")
    with chrome() as d:
        d.get(html.as_uri())
        charts = d.find_elements("css selector", "svg.chart")
        assert len(charts) >= 4 and all(c.size["height"] > 100 for c in charts)
        assert d.find_elements("css selector", "svg.chart rect")  # bars were drawn
        rows = d.find_elements("css selector", "table tr")
        assert len(rows) == 86
        assert d.save_screenshot(str(tmp_path / "report.png"))
        assert console_errors(d) == []
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_compare_flags_a_broken_configuration(kb_app, golden, golden_path, run_a, tmp_path):
    w = kb_app.searcher.settings.weights
    saved = dict(w)
    w.update(dense=0.0, title=0.0)  # dense search off
    try:
        broken = run_eval(kb_app, golden, collection="default", golden_path=golden_path, answers=False)
    finally:
        w.clear()
        w.update(saved)
    cmp = compare_runs(run_a, broken)
    assert not cmp.ok
    assert {d.metric for d in cmp.regressions} >= {"retrieval.hit@1"}
    assert cmp.worsened and all(c.what == "retrieval" for c in cmp.worsened)
    assert compare_runs(run_a, run_a).ok
    html = render_comparison(cmp, run_a, broken)
    assert "regression" in html
    # the same through the CLI: a release gate with a non-zero exit
    a, b = run_a.save(tmp_path / "a.json"), broken.save(tmp_path / "b.json")
    p = subprocess.run([sys.executable, "-m", "spravka", "eval", "compare", str(a), str(b), "--json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 1 and json.loads(p.stdout)["ok"] is False
    p = subprocess.run([sys.executable, "-m", "spravka", "eval", "compare", str(a), str(a)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0


def test_calibration_improves_refusal_f1_over_the_default_threshold(run_a):
    points = [(q["answer"]["confidence"], q["should_refuse"]) for q in run_a.questions]
    cal = calibrate(points, current=0.5)
    assert cal.chosen.refusal_f1 > cal.baseline.refusal_f1
    assert cal.chosen.macro_f1 >= cal.baseline.macro_f1
    strict = calibrate(points, current=0.5, target_precision=0.95)
    assert strict.chosen.answer_precision >= 0.95 and strict.threshold >= cal.threshold


def test_held_out_calibration_is_not_flattered_by_its_own_questions():
    rnd = random.Random(4)
    # confidence only loosely tied to the label: a threshold fitted in-sample over-promises
    noisy = [(min(1.0, max(0.0, rnd.gauss(0.45 if r else 0.6, 0.2))), r) for r in (rnd.random() < 0.4 for _ in range(120))]
    inside = calibrate(noisy, current=0.5)
    held = cross_validate(noisy, current=0.5, folds=5)
    assert held is not None and held.macro_f1 < inside.chosen.macro_f1
    assert held == cross_validate(noisy, current=0.5, folds=5)  # deterministic for a seed
    # a cleanly separable set stays perfect out of sample
    clean = [(0.9, False)] * 12 + [(0.1, True)] * 6
    assert cross_validate(clean, current=0.5).macro_f1 == 1.0
    # and one refusal alone cannot be split into folds
    assert cross_validate([(0.9, False)] * 5 + [(0.1, True)], current=0.5) is None


def test_reference_recall_counts_the_references_own_words_and_numbers():
    ref = "Ежегодный отпуск — 28 календарных дней."
    question = "Сколько дней ежегодного отпуска?"
    # «отпуск», «ежегодный», «день» come from the question: only «28» and «календарный» count
    assert reference_recall("Отпуск составляет 28 календарных дней [1].", ref, question) == 1.0
    assert reference_recall("Отпуск составляет 14 календарных дней [1].", ref, question) == 0.5
    assert reference_recall("Не нашёл информацию.", ref, question) == 0.0
    assert reference_recall("что угодно", "Сколько дней отпуска?", question) is None  # nothing beyond the question


def test_decision_stats_by_hand():
    pts = [(0.9, False), (0.8, False), (0.6, True), (0.3, True), (0.2, False)]
    s = decide(pts, 0.5)
    assert (s.answer_precision, s.answer_recall, s.refusal_precision, s.refusal_recall) == (0.6667, 0.6667, 0.5, 0.5)


def test_calibrate_command_saves_the_threshold(kb_app, golden_path, tmp_path):
    from spravka.core.settings import Settings

    home = kb_app.home
    p = subprocess.run([sys.executable, "-m", "spravka", "--data-dir", str(home), "eval", "calibrate", "--golden",
                        str(golden_path), "--json"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["saved"] and out["after"]["refusal_f1"] >= out["before"]["refusal_f1"]
    held = out["after_held_out"]
    assert held is not None and 0.0 <= held["refusal_f1"] <= 1.0 and 0.0 <= held["folds_mean_threshold"] <= 1.0
    from spravka.app import Spravka

    other = Spravka(Settings(home=home))
    try:
        assert other.store.collection_settings("default")["answer_threshold"] == out["threshold"]
    finally:
        other.close()
    kb_app.store.update_collection_settings("default", {"answer_threshold": 0.5})  # leave the fixture as found


def test_log_candidates_pick_refusals_and_bad_ratings():
    events = [
        {"answer_id": "a1", "question": "Есть ли постамат?", "decision": "refused", "collection": "c"},
        {"answer_id": "a2", "question": "Как вернуть чайник?", "decision": "answered", "cited": ["x.md"]},
        {"answer_id": "a3", "question": "Как вернуть чайник?", "decision": "answered"},
        {"answer_id": "a4", "question": "Доставка дронами?", "decision": "escalate"},
        {"answer_id": "a5", "question": "Всё хорошо", "decision": "answered"},
    ]
    feedback = [{"answer_id": "a2", "rating": "down", "comment": "не то"}, {"answer_id": "a5", "rating": "up"}]
    items = log_candidates(events, feedback)
    assert [(i["question"], i["reason"]) for i in items] == [
        ("Есть ли постамат?", "refused"), ("Как вернуть чайник?", "rated_down"), ("Доставка дронами?", "escalate")]
    assert items[1]["comment"] == "не то" and all(i["review"] for i in items)


def test_evaluation_makes_no_network_calls(kb_app, golden, monkeypatch):
    """Only loopback is allowed (a local model server); anything else would be a leak."""
    real_connect = socket.socket.connect
    attempts = []

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("/"):
            attempts.append(host)
            raise OSError(f"network access to {host} blocked by the test")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    run = run_eval(kb_app, golden[:12], collection="default", mode="extractive")
    assert run.answers["n"] == 12 and attempts == []
