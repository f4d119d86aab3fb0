"""What the HTTP interface holds for one process: the composition root, keys and rate limits,
metrics, the job worker, recent answers, readiness. Thin glue: capabilities live in the app."""

from __future__ import annotations

import logging
import re
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spravka.api.jobs import JobProgress, JobRunner
from spravka.api.metrics import Metrics
from spravka.auth import RateLimitedError, RateLimiter, can
from spravka.auth.keys import ApiKey
from spravka.core.errors import AuthError, ForbiddenError, InputError, NotFoundError
from spravka.core.filters import Filter, parse_filters
from spravka.core.types import PUBLIC_GROUP, Answer, IngestReport
from spravka.escalate.service import chunk_dict

log = logging.getLogger("spravka.api")

_COLLECTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
#: answers remembered for feedback and escalations (id → who asked, what was answered)
_RECENT_ANSWERS = 5000


def check_collection_name(name: str) -> str:
    if not _COLLECTION.match(name or ""):
        raise InputError(f"invalid collection name '{(name or '')[:80]}'",
                         hint="letters, digits, '_', '-', '.', up to 64 characters")
    return name


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an active API key."""

    key: ApiKey

    @property
    def groups(self) -> tuple[str, ...]:
        return self.key.groups

    @property
    def role(self) -> str:
        return str(self.key.role)

    def may(self, permission: str) -> bool:
        return can(self.key.role, permission)

    def require(self, permission: str) -> Principal:
        if not self.may(permission):
            raise ForbiddenError(f"the role '{self.role}' may not do this ({permission})",
                                 hint="ask an administrator for a key with the right role")
        return self

    def caller(self, channel: str) -> dict[str, Any]:
        """Who asked, for the query log: channel, role and key id (never the key itself)."""
        return {"channel": channel, "role": self.role, "key": self.key.id, "key_name": self.key.name}

    def filter(self, filters: Any = None) -> Filter:
        """Every search and answer of this caller reads only its access groups (plus public)."""
        return parse_filters(filters or None, groups=self.key.groups)

    def reads(self, doc_groups: tuple[str, ...] | list[str]) -> bool:
        return bool(set(doc_groups) & (set(self.key.groups) | {PUBLIC_GROUP}))

    def upload_groups(self, requested: tuple[str, ...]) -> tuple[str, ...]:
        """Groups an uploaded document gets: as requested (an editor only within its own groups
        and public), by default the uploader's groups, or public when it has none."""
        own = set(self.key.groups) | {PUBLIC_GROUP}
        if requested:
            if self.role != "admin" and not set(requested) <= own:
                bad = ", ".join(sorted(set(requested) - own))
                raise ForbiddenError(f"this key may not publish into groups: {bad}")
            return requested
        return self.key.groups or (PUBLIC_GROUP,)


class Service:
    def __init__(self, sp: Any, *, demo_key: str | None = None) -> None:
        self.sp = sp
        self.settings = sp.settings.server
        self.keys = sp.keys
        self.limiter = RateLimiter(self.settings.rate_per_minute, self.settings.burst)
        self.metrics = Metrics()
        self.demo_key = demo_key
        self.uploads = Path(self.settings.uploads_dir or Path(sp.home) / "uploads").expanduser()
        self.max_upload_bytes = int(self.settings.max_upload_mb * 2**20)
        self.jobs = JobRunner(sp.store, {"api.upload": self._job_upload, "api.reingest": self._job_reingest,
                                         "api.delete": self._job_delete},
                              on_finish=lambda kind, state: self.metrics.jobs.labels(kind, state).inc())
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._answers_lock = threading.Lock()
        self._ready = threading.Event()
        self._warm_lock = threading.Lock()
        self._warm_started = False
        self.warm_error: str | None = None
        self._recovery: threading.Event | None = None

    # ---- auth -------------------------------------------------------------------------------
    def authenticate(self, raw: str | None) -> Principal:
        if not raw:
            self.metrics.auth_failures.labels("401").inc()
            raise AuthError("missing API key", hint="send 'Authorization: Bearer <key>'; create one with 'spravka keys create'")
        key = self.keys.verify(raw)
        if key is None:
            self.metrics.auth_failures.labels("401").inc()
            raise AuthError("invalid or revoked API key")
        # a key's own rate also bounds its burst to one minute's worth
        burst = max(1, min(self.settings.burst, int(key.rate_per_minute))) if key.rate_per_minute else None
        wait = self.limiter.take(key.id, rate_per_minute=key.rate_per_minute, burst=burst)
        if wait > 0:
            self.metrics.rate_limited.inc()
            raise RateLimitedError(f"too many requests for this key; retry in {wait:.1f} s", retry_after=wait)
        return Principal(key)

    # ---- agents: approvals a stopped process did not carry out ------------------------------------
    def start_recovery(self, interval_s: float = 60.0) -> None:
        """Every ``interval_s``, carry out approved agent actions whose run stopped with its
        process (``Agents.recover``); nothing runs when there are no agents."""
        if self._recovery is not None:
            return
        try:
            if not self.sp.agents.available():
                return
        except Exception:  # noqa: BLE001 - a broken agent file is reported where agents are used
            log.exception("agents cannot load: no recovery of interrupted approvals")
            return
        stop = threading.Event()

        def loop() -> None:
            while True:
                try:
                    for r in self.sp.agents.recover():
                        log.warning("carried out an interrupted approval: run %s is now %s", r.run_id, r.status)
                except Exception:  # noqa: BLE001 - try again next time; the approval stays visible
                    log.exception("recovery of interrupted approvals failed")
                if stop.wait(interval_s):
                    return

        self._recovery = stop
        threading.Thread(target=loop, name="spravka-agent-recovery", daemon=True).start()

    def stop_recovery(self) -> None:
        if self._recovery is not None:
            self._recovery.set()
            self._recovery = None

    # ---- readiness ----------------------------------------------------------------------------
    def warm_up(self, *, background: bool = True) -> None:
        """Load the embedding model and the default collection's vectors once, so the first
        question is not the slow one. ``/readyz`` answers 503 until this is done."""
        with self._warm_lock:
            if self._warm_started:
                return
            self._warm_started = True
        if background:
            threading.Thread(target=self._warm, name="spravka-warm-up", daemon=True).start()
        else:
            self._warm()

    def _warm(self) -> None:
        try:
            self.sp.embedder.embed_query("прогрев")
            name = self.sp.settings.collection
            if self.sp.store.has_collection(name):
                self.sp.searcher.search("прогрев", collection=name, k=1, flt=Filter(groups=()))
        except Exception as e:  # noqa: BLE001 - readiness reports it; requests will show the real error
            self.warm_error = f"{type(e).__name__}: {e}"
            log.exception("warm-up failed")
        finally:
            self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    # ---- answers remembered for feedback and escalation -----------------------------------------
    def remember(self, answer: Answer, principal: Principal, channel: str) -> None:
        with self._answers_lock:
            self._answers[answer.id] = {"key": principal.key.id, "collection": answer.collection,
                                        "question": answer.question, "text": answer.text,
                                        "status": str(answer.status),
                                        "cited": [c.doc_id for c in answer.citations],
                                        "hits": [chunk_dict(h) for h in answer.hits]}
            while len(self._answers) > _RECENT_ANSWERS:
                self._answers.popitem(last=False)
        self.metrics.observe_answer(answer)
        self.sp.store.log_event("api.answer", {"answer_id": answer.id, "key": principal.key.id,
                                               "key_name": principal.key.name, "channel": channel,
                                               "status": str(answer.status)}, collection=answer.collection)

    def recall(self, answer_id: str) -> dict[str, Any] | None:
        with self._answers_lock:
            known = self._answers.get(answer_id)
        if known is not None:
            return known
        for ev in self.sp.store.events(kind="answer", limit=5000):
            if ev.get("answer_id") == answer_id:
                return {"key": None, "collection": ev.get("collection"), "question": ev.get("question"),
                        "text": None, "status": ev.get("decision"), "cited": ev.get("cited", [])}
        return None

    # ---- documents and jobs -------------------------------------------------------------------
    def upload_dir(self, collection: str) -> Path:
        return self.uploads / check_collection_name(collection)

    def staging_dir(self) -> Path:
        return self.uploads / ".staging"

    def place_upload(self, staged: Any, collection: str, groups: tuple[str, ...], principal: Principal) -> dict:
        """Move staged files into the collection's upload folder with their access groups (a
        sidecar ``.meta.yaml``), and queue their ingestion."""
        target = self.upload_dir(collection)
        target.mkdir(parents=True, exist_ok=True)
        files = []
        try:
            for f in staged.files:
                if f.size == 0:
                    raise InputError(f"'{f.filename}' is empty")
            for f in staged.files:
                dest = target / f.filename
                sidecar = target / (f.filename + ".meta.yaml")
                sidecar.write_text(yaml.safe_dump({"access_groups": list(groups)}, allow_unicode=True), encoding="utf-8")
                shutil.move(str(f.path), str(dest))
                files.append({"file": f.filename, "bytes": f.size, "document_id": f.filename})
        finally:
            staged.discard()
        job = self.jobs.submit("api.upload", {"collection": collection, "files": [f["file"] for f in files],
                                              "groups": list(groups), "key": principal.key.id}, total=len(files))
        return {"job_id": job, "collection": collection, "groups": list(groups), "files": files}

    def _ingest_report(self, report: IngestReport) -> dict[str, Any]:
        return {"added": report.added, "updated": report.updated, "unchanged": report.unchanged,
                "duplicates": report.duplicates, "failed": report.failed, "chunks": report.chunks,
                "failures": [{"document": d, "reason": r, "message": m} for d, r, m in report.failures]}

    def _job_upload(self, job_id: str, params: dict[str, Any], progress: JobProgress) -> dict[str, Any]:
        collection = params["collection"]
        folder = self.upload_dir(collection)
        out, failed = [], 0
        for name in params["files"]:
            path = folder / name
            if not path.is_file():
                out.append({"file": name, "failed": 1, "failures": [{"document": name, "reason": "missing",
                                                                       "message": "the uploaded file is gone"}]})
                failed += 1
            else:
                rep = self._ingest_report(self.sp.ingest(path, collection, progress=progress))
                failed += rep["failed"]
                out.append({"file": name, **rep})
            progress.step(f"{name}: ingested")
        return {"collection": collection, "files": out, "failed": failed}

    def _job_reingest(self, job_id: str, params: dict[str, Any], progress: JobProgress) -> dict[str, Any]:
        """Re-read each document's file: its source is marked stale, then its folder is ingested
        again incrementally (unchanged text is not re-embedded; a failed file is retried)."""
        collection = params["collection"]
        store = self.sp.store
        roots: dict[str, list[str]] = {}
        skipped = []
        for doc_id in params["doc_ids"]:
            rec = store.get_document(collection, doc_id)
            src = store.get_source(collection, rec.source) if rec is not None and rec.source else None
            if src is None or not src.root:
                skipped.append({"document": doc_id, "reason": "no_source",
                                "message": "the document has no file to re-read"})
                continue
            if not (Path(src.root) / src.path).is_file():
                skipped.append({"document": doc_id, "reason": "missing", "message": f"{src.path} is gone"})
                continue
            src.file_hash = ""
            store.put_source(src)
            roots.setdefault(src.root, []).append(src.path)
        results = []
        for root, paths in roots.items():
            if all("/" not in p for p in paths) and len(paths) <= 20:
                for p in paths:  # top-level files: re-read just them
                    results.append(self._ingest_report(self.sp.ingest(Path(root) / p, collection, progress=progress)))
            else:
                results.append(self._ingest_report(self.sp.ingest(Path(root), collection, progress=progress)))
            progress.step(f"{root}: re-read")
        failures = skipped + [f for r in results for f in r["failures"]]
        return {"collection": collection, "reingested": sum(r["updated"] + r["added"] for r in results),
                "unchanged": sum(r["unchanged"] for r in results), "failed": len(failures), "failures": failures}

    def _job_delete(self, job_id: str, params: dict[str, Any], progress: JobProgress) -> dict[str, Any]:
        collection = params["collection"]
        store = self.sp.store
        if not store.has_collection(collection):
            return {"collection": collection, "deleted": 0, "failed": 0}
        uploads = str(self.upload_dir(collection).resolve())
        deleted = 0
        for doc_id in params["doc_ids"]:
            rec = store.get_document(collection, doc_id)
            if rec is None:
                continue
            deleted += self.sp.ingestor.delete_documents(collection, [doc_id])
            src = store.get_source(collection, rec.source) if rec.source else None
            if src is not None:
                src.doc_ids = [d for d in src.doc_ids if d != doc_id]
                if src.doc_ids:
                    store.put_source(src)
                else:
                    # An uploaded file goes with its last document; a folder's file comes back
                    # at the next ingestion of that folder (the folder is the truth).
                    store.delete_source(collection, src.path)
                    if src.root and str(Path(src.root).resolve()) == uploads:
                        for p in (Path(src.root) / src.path, Path(src.root) / (src.path + ".meta.yaml")):
                            p.unlink(missing_ok=True)
            progress.step(f"{doc_id}: deleted")
        return {"collection": collection, "deleted": deleted, "failed": 0}

    def pending_jobs(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Jobs of this API that a previous process left queued or running (embedded store)."""
        db = getattr(self.sp.store, "db", None)
        if db is None or not hasattr(db, "query") or type(db).__name__ != "Database":
            return []
        import json

        rows = db.query("SELECT id, kind, params FROM jobs WHERE state IN ('queued', 'running')"
                        " AND kind IN ('api.upload', 'api.reingest', 'api.delete') ORDER BY created_at")
        return [(r[0], r[1], json.loads(r[2])) for r in rows]

    def job(self, job_id: str, principal: Principal) -> dict[str, Any]:
        job = self.sp.store.get_job(job_id)
        if job is None or not str(job.get("kind", "")).startswith("api."):
            raise NotFoundError(f"job '{job_id}' not found")
        if principal.role != "admin" and (job.get("params") or {}).get("key") != principal.key.id:
            raise NotFoundError(f"job '{job_id}' not found")
        return job

    def close(self) -> None:
        self.jobs.stop()
