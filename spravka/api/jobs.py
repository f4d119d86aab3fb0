"""Background jobs of the API: uploads, re-ingestion and deletions, one at a time.

One worker thread runs them in order, so two ingestions never interleave in one collection, and
a request returns at once with a job id to poll (``GET /v1/jobs/{id}``). The job's row in the
store (state queued → running → done | failed, progress, message, error, result) is the single
truth; jobs left queued or running by a crash are run again when the API starts, because every
step they take is idempotent (ingestion is incremental, deletion of a missing document is a no-op).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: kind → function(job_id, params, progress) that does the work and returns the job's result
Handler = Callable[[str, dict[str, Any], "JobProgress"], dict[str, Any]]


class JobProgress:
    """Implements the ingestion pipeline's ProgressSink on top of a job row."""

    def __init__(self, store: Any, job_id: str) -> None:
        self.store = store
        self.job_id = job_id
        self.total = 0
        self.done = 0
        self.chunks = 0
        self.last: list[str] = []

    def start(self, total_files: int) -> None:
        pass  # the job's total is the number of files it was given, set at submission

    def file_done(self, path: str, status: str, detail: str = "") -> None:
        self.last.append(f"{path}: {status}" + (f" ({detail})" if detail else ""))

    def embedded(self, n: int) -> None:
        self.chunks += n
        self.store.update_job(self.job_id, message=f"{self.chunks} chunks embedded")

    def step(self, message: str) -> None:
        self.done += 1
        self.store.update_job(self.job_id, progress=self.done, message=message[:500])


class JobRunner:
    def __init__(self, store: Any, handlers: dict[str, Handler], *, on_finish: Callable[[str, str], None] | None = None,
                 ) -> None:
        self.store = store
        self.handlers = handlers
        self.on_finish = on_finish
        self._queue: queue.Queue[tuple[str, str, dict[str, Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0
        self._cond = threading.Condition()
        #: ids of recent jobs, newest last (for the admin console)
        self.recent: deque[str] = deque(maxlen=50)

    def submit(self, kind: str, params: dict[str, Any], total: int = 0) -> str:
        if kind not in self.handlers:
            raise ValueError(kind)
        job_id = self.store.start_job(kind, params)
        self.store.update_job(job_id, state="queued", total=total, message="waiting for the worker")
        self._enqueue(job_id, kind, params)
        return job_id

    def _enqueue(self, job_id: str, kind: str, params: dict[str, Any]) -> None:
        self.recent.append(job_id)
        with self._cond:
            self._pending += 1
        self._queue.put((job_id, kind, params))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="spravka-jobs", daemon=True)
                self._thread.start()

    def resume(self, pending: list[tuple[str, str, dict[str, Any]]]) -> int:
        """Run again the jobs a previous process left unfinished: ``(id, kind, params)``."""
        n = 0
        for job_id, kind, params in pending:
            if kind in self.handlers:
                self.store.update_job(job_id, state="queued", message="resumed after a restart")
                self._enqueue(job_id, kind, params)
                n += 1
        return n

    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=30)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            if item is None:  # stop(), unless jobs were queued after it
                if self._queue.empty():
                    with self._lock:
                        self._thread = None
                    return
                continue
            job_id, kind, params = item
            try:
                self._run(job_id, kind, params)
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()

    def _run(self, job_id: str, kind: str, params: dict[str, Any]) -> None:
        progress = JobProgress(self.store, job_id)
        state = "failed"
        try:
            self.store.update_job(job_id, state="running", message="running")
            result = self.handlers[kind](job_id, params, progress)
            failures = int(result.get("failed", 0)) if isinstance(result, dict) else 0
            state = "done"
            self.store.update_job(job_id, state=state, result=result,
                                  message="done" + (f", {failures} failed" if failures else ""))
        except BaseException as e:  # noqa: BLE001 - a job never takes the worker (or the process) down
            log.exception("job %s (%s) failed", job_id, kind)
            try:
                self.store.update_job(job_id, state="failed", error=f"{type(e).__name__}: {e}"[:2000],
                                      message="failed")
            except Exception:  # noqa: BLE001
                log.exception("cannot record the failure of job %s", job_id)
        finally:
            if self.on_finish:
                with contextlib.suppress(Exception):
                    self.on_finish(kind, state)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every submitted job has finished (tests, shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def stop(self) -> None:
        """Let the worker end once the queue is empty (a running job finishes; a job cut short by
        the process exiting is resumed at the next start)."""
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
        if alive:
            self._queue.put(None)
