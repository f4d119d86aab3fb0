"""The ticket classifier as the application uses it: ``app.classifier``.

It owns the persistent side: the active taxonomy and routing rules (imported into the data
directory, versioned), the labelled examples, the fitted model under ``$SPRAVKA_HOME/classify/``,
the triage queue (inbox items of type ``triage``) and deliveries (inbox ``ticket`` items and
outbox messages, keyed by the ticket id so a re-submitted ticket is never delivered twice).

Learning from corrections: a correction (API/CLI) or a resolved triage item becomes a labelled
example in the same call, so the very next prediction sees it through kNN (and the LLM's few
shots); ``retrain`` refits the supervised members and recalibrates.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from spravka.classify.engine import Engine, ExampleIndex, model_options, prepare
from spravka.classify.model import FitReport, LabelModel
from spravka.classify.rules import RuleSet
from spravka.classify.store import ClassifyStore
from spravka.classify.taxonomy import PRIORITY_RANK, Taxonomy
from spravka.classify.types import Classification, RouteDecision
from spravka.core.errors import ConfigError, InputError, NotFoundError
from spravka.core.settings import ClassifySettings
from spravka.models.embedder import text_hash
from spravka.store.queues import InboxState

#: example sources that are a person's decision on a real ticket
HUMAN_SOURCES = ("correction", "triage")
#: how often a prediction looks for triage items resolved elsewhere (the admin page, the API)
_SYNC_EVERY_S = 5.0


class TicketClassifier:
    def __init__(self, *, db, embedder, settings: ClassifySettings, home: Path, inbox, outbox,
                 log_event: Callable[[str, dict[str, Any]], Any], llm: Callable[[], Any] | None = None,
                 llm_available: Callable[[], bool] | None = None) -> None:
        self.store = ClassifyStore(db)
        self.embedder = embedder
        self.settings = settings
        self.home = Path(home)
        self.inbox = inbox
        self.outbox = outbox
        self.log_event = log_event
        self._llm = llm
        self._llm_available = llm_available or (lambda: False)
        self._lock = threading.RLock()
        self._taxonomy: Taxonomy | None = None
        self._rules: RuleSet | None = None
        self._engine: Engine | None = None
        self._engine_rev: tuple[int, str] | None = None
        self._synced_at = 0.0

    # ---- taxonomy and rules ------------------------------------------------------------------
    def import_taxonomy(self, path: Path, rules: Path | None = None) -> Taxonomy:
        """Store the taxonomy (a new version if it changed) and seed its examples; existing
        examples, corrections included, keep their labels."""
        tax = Taxonomy.from_file(path)
        with self._lock:
            self.store.put_doc("taxonomy", tax.name, tax.to_dict(), tax.hash)
            self.store.add_examples(tax.name, tax.seed_examples(), "taxonomy", replace=False)
            if rules is not None:
                rs = RuleSet.from_file(rules)
                body = rs.to_dict()
                self.store.put_doc("rules", tax.name, body, text_hash(repr(sorted(body.items()))))
            self._taxonomy, self._rules, self._engine = tax, None, None
        return tax

    @property
    def taxonomy(self) -> Taxonomy:
        with self._lock:
            if self._taxonomy is None:
                if self.settings.taxonomy is not None:
                    self.import_taxonomy(self.settings.taxonomy)
                else:
                    doc = self.store.get_doc("taxonomy")
                    if doc is None:
                        raise ConfigError(
                            "no taxonomy: the classifier does not know the categories yet",
                            hint="spravka classify import samples/taxonomy/domoteka.yaml "
                                 "(or set classify.taxonomy)")
                    self._taxonomy = Taxonomy.from_dict(doc.body)
            return self._taxonomy  # type: ignore[return-value]

    @property
    def rules(self) -> RuleSet:
        with self._lock:
            if self._rules is None:
                if self.settings.rules is not None:
                    self._rules = RuleSet.from_file(self.settings.rules)
                else:
                    doc = self.store.get_doc("rules", self.taxonomy.name)
                    self._rules = RuleSet.from_dict(doc.body if doc else None)
            return self._rules

    @property
    def model_dir(self) -> Path:
        return self.home / "classify" / self.taxonomy.name

    # ---- the engine over the current examples ----------------------------------------------
    def engine(self) -> Engine:
        with self._lock:
            tax = self.taxonomy
            rev = (self.store.revision(tax.name), tax.hash)
            if self._engine is not None and self._engine_rev == rev:
                return self._engine
            index = self._index(tax)
            s = self.settings
            model = self._load_model(tax, rev[0])
            if model is None and 0 < len(index.y) <= s.auto_fit_max:
                # small example sets are refitted on every change, so a correction reaches the
                # supervised members (not only kNN) at once; bigger ones wait for ``retrain``
                model = self._fit(tax, index)
            elif model is None:
                model = self._load_model(tax, None)
            self._engine = Engine(tax, self.embedder, s, index, model, llm=self._llm,
                                  llm_available=self._llm_available)
            self._engine_rev = rev
            return self._engine

    def _index(self, tax: Taxonomy) -> ExampleIndex:
        examples = self.store.examples(tax.name)
        s = self.settings
        return ExampleIndex.build(self.embedder, tax, [(e.text, e.label) for e in examples], s.k, s.knn_temperature,
                                  verified=[e.source in HUMAN_SOURCES for e in examples])

    def _load_model(self, tax: Taxonomy, revision: int | None) -> LabelModel | None:
        """The saved model if it fits the taxonomy and embedder (and, given ``revision``, was
        fitted on exactly the current examples)."""
        loaded = LabelModel.load(self.model_dir)
        if loaded is None:
            return None
        model, meta = loaded
        if model.labels != tax.labels or meta.get("embedder") != self.embedder.name:
            return None  # the taxonomy or the embedder changed since: refit
        if revision is not None and meta.get("revision") != revision:
            return None
        # the current settings decide kNN's breadth; the fitted weights stay
        model.options.k, model.options.knn_temperature = self.settings.k, self.settings.knn_temperature
        return model

    def _fit(self, tax: Taxonomy, index: ExampleIndex) -> LabelModel:
        model = LabelModel(tax.labels, model_options(self.settings))
        model.fit([prepare(t) for t in index.texts], index.vectors, index.y)
        model.save(self.model_dir, {"embedder": self.embedder.name, "taxonomy_hash": tax.hash,
                                    "revision": self.store.revision(tax.name),
                                    "fitted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
        return model

    def retrain(self) -> FitReport:
        """Refit the supervised members and the calibration on all current examples."""
        with self._lock:
            self.sync_triage(force=True)
            tax = self.taxonomy
            s = self.settings
            index = self._index(tax)
            if not len(index.y):
                raise InputError(f"taxonomy '{tax.name}' has no labelled examples to learn from")
            model = self._fit(tax, index)
            self._engine = Engine(tax, self.embedder, s, index, model, llm=self._llm,
                                  llm_available=self._llm_available)
            self._engine_rev = (self.store.revision(tax.name), tax.hash)
        report = model.report
        assert report is not None
        self.log_event("classify_retrain", {"taxonomy": tax.name, **asdict(report)})
        return report

    # ---- classification ----------------------------------------------------------------------
    def classify(self, text: str, metadata: dict[str, Any] | None = None, *, ticket_id: str | None = None,
                 method: str | None = None) -> Classification:
        return self.classify_many([text], [metadata or {}], [ticket_id] if ticket_id else None, method=method)[0]

    def classify_many(self, texts: Sequence[str], metadata: Sequence[dict[str, Any]] | None = None,
                      ticket_ids: Sequence[str] | None = None, *, method: str | None = None,
                      progress: Callable[[int], None] | None = None) -> list[Classification]:
        """Classify and remember each ticket (for corrections by id); logged as ``classify``."""
        self.sync_triage()
        ids = list(ticket_ids) if ticket_ids else [f"t-{uuid.uuid4().hex[:12]}" for _ in texts]
        results = self.engine().classify_many(texts, metadata, ids, method=method, progress=progress)
        tax = self.taxonomy
        for c in results:
            self.store.save_ticket(tax.name, c.ticket_id, c.text, c.metadata, c.label, c.confidence, c.method,
                                   "classified")
            self.log_event("classify", {
                "taxonomy": tax.name, "ticket_id": c.ticket_id, "text_hash": text_hash(c.text), "label": c.label,
                "confidence": c.confidence, "method": c.method, "needs_review": c.needs_review,
                "candidates": [[x.label, x.confidence] for x in c.candidates[:3]], "latency_ms": c.latency_ms,
            })
        return results

    # ---- routing -----------------------------------------------------------------------------
    def route(self, c: Classification, *, dispatch: bool = True, when: dt.datetime | None = None) -> RouteDecision:
        """Apply the rules; with ``dispatch`` create the triage item, the queue items and the
        outbox messages (idempotent per ticket and target)."""
        tax = self.taxonomy
        when = when or _received_at(c.metadata)
        targets, matched, priority = self.rules.route(c, tax, when)
        node = tax.nodes.get(c.label)
        routing = node.routing if node and not c.needs_review else None
        sla_due = None
        if routing and routing.sla_hours:
            sla_due = (when + dt.timedelta(hours=routing.sla_hours)).isoformat(timespec="minutes")
        decision = RouteDecision(
            ticket_id=c.ticket_id, label=c.label, targets=targets, rules=matched, priority=priority,
            department=routing.department if routing else None, queue=routing.queue if routing else None,
            sla_due=sla_due,
        )
        if dispatch:
            self._dispatch(c, decision)
        return decision

    def handle(self, text: str, metadata: dict[str, Any] | None = None, *, ticket_id: str | None = None,
               dispatch: bool = True) -> tuple[Classification, RouteDecision]:
        c = self.classify(text, metadata, ticket_id=ticket_id)
        return c, self.route(c, dispatch=dispatch)

    def _payload(self, c: Classification, d: RouteDecision) -> dict[str, Any]:
        return {"ticket_id": c.ticket_id, "text": c.text, "metadata": c.metadata, "label": c.label,
                "title": c.title, "confidence": c.confidence, "method": c.method, "explanation": c.explanation,
                "department": d.department, "queue": d.queue, "priority": d.priority, "sla_due": d.sla_due,
                "rules": d.rules, "taxonomy": c.taxonomy}

    def _dispatch(self, c: Classification, d: RouteDecision) -> None:
        tax = self.taxonomy.name
        payload = self._payload(c, d)
        prio = PRIORITY_RANK.get(d.priority, 1)
        triage_id = None
        for target in d.targets:
            key = f"classify:{tax}:{c.ticket_id}:{target}"
            if target == "triage":
                item = self.inbox.add(
                    "triage", f"Разобрать обращение: {c.text[:80]}",
                    {**payload, "candidates": [asdict(x) for x in c.candidates],
                     "neighbours": [asdict(x) for x in c.neighbours], "labels": self.taxonomy.labels},
                    priority=prio, ref=c.ticket_id, dedup_key=key)
                triage_id = item.id
                d.inbox_items.append(item.id)
            elif target == "inbox" or target.startswith("inbox:"):
                queue = target.partition(":")[2] or d.queue or c.label
                item = self.inbox.add("ticket", f"[{queue}] {c.text[:80]}", {**payload, "queue": queue},
                                      priority=prio, ref=c.ticket_id, dedup_key=key)
                d.inbox_items.append(item.id)
            else:
                msg = self.outbox.enqueue(target, payload, idempotency_key=key)
                d.outbox_messages.append(msg.id)
        d.dispatched = True
        self.store.save_ticket(tax, c.ticket_id, c.text, c.metadata, c.label, c.confidence, c.method,
                               "triage" if triage_id else "routed", triage_id)
        self.log_event("route", {"taxonomy": tax, "ticket_id": c.ticket_id, "label": c.label,
                                 "targets": d.targets, "rules": d.rules, "priority": d.priority})

    # ---- learning from people ------------------------------------------------------------
    def add_examples(self, items: Sequence[tuple[str, str]], *, source: str = "import", actor: str | None = None,
                     ref: str | None = None) -> int:
        tax = self.taxonomy
        resolved = [(t.strip(), tax.resolve(lab)) for t, lab in items if t and t.strip()]
        return self.store.add_examples(tax.name, resolved, source, actor=actor, ref=ref)

    def correct(self, label: str, *, ticket_id: str | None = None, text: str | None = None,
                actor: str = "operator") -> None:
        """A person says ``label`` is right for a ticket (by id) or a text: it becomes a labelled
        example at once. An open triage item of that ticket is resolved with it."""
        tax = self.taxonomy
        label = tax.resolve(label)
        record = self.store.ticket(tax.name, ticket_id) if ticket_id else None
        if ticket_id and record is None and text is None:
            raise NotFoundError(f"ticket '{ticket_id}' was never classified here")
        text = text or (record.text if record else None)
        if not text or not text.strip():
            raise InputError("a correction needs the ticket id or its text")
        self.store.add_examples(tax.name, [(text, label)], "correction", ref=ticket_id, actor=actor)
        if record is not None:
            self.store.save_ticket(tax.name, record.ticket_id, record.text, record.metadata, label, 1.0, "human",
                                   "corrected")
            if record.triage_id:
                item = self.inbox.get(record.triage_id)
                if item is not None and item.state in (InboxState.OPEN, InboxState.CLAIMED):
                    self.inbox.resolve(item.id, {"label": label}, actor)
                    self.store.add_examples(tax.name, [(text, label)], "triage", ref=item.id, actor=actor)
        self.log_event("classify_correction", {"taxonomy": tax.name, "ticket_id": ticket_id, "label": label,
                                               "previous": record.label if record else None, "actor": actor})

    def resolve_triage(self, item_id: str, label: str, *, actor: str = "operator",
                       dispatch: bool = True) -> RouteDecision:
        """Close a triage item with the right category: learn it, then route the ticket with it."""
        item = self.inbox.get(item_id)
        if item is None or item.type != "triage":
            raise NotFoundError(f"triage item '{item_id}' not found")
        label = self.taxonomy.resolve(label)
        if item.state in (InboxState.OPEN, InboxState.CLAIMED):
            item = self.inbox.resolve(item_id, {"label": label}, actor)
        return self._learn_triage(item, label, actor, dispatch)

    def _learn_triage(self, item, label: str, actor: str, dispatch: bool) -> RouteDecision:
        tax = self.taxonomy
        p = item.payload
        text, ticket_id = p.get("text", ""), p.get("ticket_id") or item.ref or item.id
        self.store.add_examples(tax.name, [(text, label)], "triage", ref=item.id, actor=actor)
        human = Classification(
            ticket_id=ticket_id, text=text, label=label, title=tax.title(label), confidence=1.0, method="human",
            explanation=f"категорию выбрал(а) {actor}", needs_review=False, leaf=label, leaf_confidence=1.0,
            parent=tax.parent(label), metadata=p.get("metadata") or {}, taxonomy=tax.name)
        self.log_event("classify_correction", {"taxonomy": tax.name, "ticket_id": ticket_id, "label": label,
                                               "previous": p.get("label"), "actor": actor, "triage": item.id})
        decision = self.route(human, dispatch=dispatch)
        self.store.save_ticket(tax.name, ticket_id, text, human.metadata, label, 1.0, "human", "corrected", item.id)
        return decision

    def sync_triage(self, *, force: bool = False) -> int:
        """Learn from triage items resolved outside :meth:`resolve_triage` (the generic inbox API):
        a resolution with a ``label`` becomes an example and the ticket is routed. Idempotent."""
        now = time.monotonic()
        if not force and now - self._synced_at < _SYNC_EVERY_S:
            return 0
        self._synced_at = now
        if self._taxonomy is None and self.settings.taxonomy is None and self.store.get_doc("taxonomy") is None:
            return 0
        tax = self.taxonomy
        learned = self.store.learned_refs(tax.name, "triage")
        n = 0
        for item in self.inbox.list(type="triage", state=InboxState.DONE, limit=500):
            label = (item.resolution or {}).get("label")
            if not label or item.id in learned or item.payload.get("taxonomy", tax.name) != tax.name:
                continue
            try:
                label = tax.resolve(str(label))
            except InputError:
                continue
            self._learn_triage(item, label, (item.resolution or {}).get("by") or item.assignee or "operator", True)
            n += 1
        return n

    # ---- introspection -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        tax = self.taxonomy
        doc = self.store.get_doc("taxonomy", tax.name)
        counts = self.store.example_counts(tax.name)
        loaded = LabelModel.load(self.model_dir)
        model = None
        if loaded is not None:
            m, meta = loaded
            model = {"fitted_at": meta.get("fitted_at"), "report": meta.get("report"),
                     "stale": meta.get("revision") != self.store.revision(tax.name)
                     or m.labels != tax.labels or meta.get("embedder") != self.embedder.name}
        return {
            "taxonomy": tax.name, "version": doc.version if doc else None, "labels": len(tax.labels),
            "examples": {lab: counts.get(lab, {}) for lab in tax.labels},
            "unknown_labels": sorted(set(counts) - set(tax.labels)),
            "rules": [r.name for r in self.rules.spec.rules], "threshold": self.settings.threshold,
            "method": self.settings.method, "model": model,
            "triage_open": self.inbox.counts().get("triage", {}).get("open", 0),
        }


def _received_at(metadata: dict[str, Any]) -> dt.datetime:
    raw = metadata.get("received_at") if metadata else None
    if raw:
        try:
            when = dt.datetime.fromisoformat(str(raw))
            return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        except ValueError:
            pass
    return dt.datetime.now(dt.UTC)
