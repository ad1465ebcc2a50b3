"""Background jobs: progress with ETA, cancel, and a record of every job in the project's database.

The server runs jobs one at a time in one worker thread of its own process (DuckDB has one writer per file;
torch releases the GIL while it computes). The CLI runs the same job function in the foreground through
`run_job`, so both leave the same record.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Callable

from engine.errors import LabelloopError, as_refusal
from engine.jobs.progress import StagePace
from storage import Store


class Cancelled(Exception):
    """Raised inside a job at its next check after someone asked it to stop."""


@dataclass
class JobContext:
    """What a job function gets: report progress, and find out whether it should stop."""

    job_id: int
    store: Store
    cancel_event: threading.Event = field(default_factory=threading.Event)
    on_progress: Callable[[float, str], None] | None = None
    run_again: bool = False  # set by JobRunner.submit_or_fold: the inputs changed while the job ran
    clock: Callable[[], float] = time.monotonic
    _pace: StagePace = field(default_factory=StagePace)  # the seconds left, from the samples written

    def progress(self, fraction: float, message: str) -> None:
        """fraction in [0, 1] of the whole job; written at most twice a second (and whenever a new stage starts),
        with the seconds left at the pace of the current stage's latest steps (engine.jobs.progress.StagePace;
        none until there are steps to measure)."""
        self.check_cancel()
        if self.on_progress:
            self.on_progress(fraction, message)
        now = self.clock()
        if (self._pace.samples and not self._pace.starts_stage(message) and now - self._pace.samples[-1][0] < 0.5
                and fraction < 1.0):
            return
        self.store.update_job(self.job_id, progress=float(fraction),
                              eta_seconds=self._pace.add(now, float(fraction), message), message=message)

    def check_cancel(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled()


JobFunction = Callable[[JobContext], dict]


def run_job(store: Store, kind: str, config: dict, work: JobFunction, *, context: JobContext | None = None,
            on_progress: Callable[[float, str], None] | None = None) -> dict:
    """Run `work` now, recording queued -> running -> done | failed | cancelled in the jobs table."""
    if context is None:
        context = JobContext(store.create_job(kind, config), store, on_progress=on_progress)
    store.update_job(context.job_id, status="running", message="started")
    try:
        result = work(context)
    except Cancelled:
        store.update_job(context.job_id, status="cancelled", message="cancelled")
        raise
    except BaseException as error:
        # the page shows the record: a full disk in words, not DuckDB's; that disk may refuse the record too, and then
        # the job's own error is still the one to tell
        with suppress(Exception):
            store.update_job(context.job_id, status="failed",
                             error=str(as_refusal(error) or error) or type(error).__name__)
        raise
    store.update_job(context.job_id, status="done", progress=1.0, message="done")
    return result


class JobRunner:
    """One background worker thread running submitted jobs in order; at most one job of a kind at a time."""

    def __init__(self, store: Store):
        self.store = store
        self._queue: queue.Queue = queue.Queue()
        self._active: dict[int, tuple[str, JobContext]] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="labelloop-jobs", daemon=True)
        self._thread.start()

    def submit(self, kind: str, config: dict, work: JobFunction) -> int:
        with self._lock:
            busy = self._active_of(kind)
            if busy:
                article = "an" if kind[:1] in "aeiou" else "a"
                raise LabelloopError(f"{article} {kind} job is already queued or running (job {busy.job_id}); "
                                     "wait or cancel it")
            return self._enqueue(kind, config, work)

    def submit_or_fold(self, kind: str, config: dict, work: JobFunction) -> int:
        """Like `submit`, but when a job of `kind` is already queued or running, that job runs `work` once more
        after its current pass instead (quick successive class edits each need zero-shot again, and one more pass
        covers them all). Returns the id of the job that will do it."""
        with self._lock:
            busy = self._active_of(kind)
            if busy:
                busy.run_again = True
                return busy.job_id

            def until_settled(context: JobContext) -> dict:
                while True:
                    result = work(context)
                    with self._lock:  # checked and retired together, so no later edit slips between the two
                        if not context.run_again:
                            self._active.pop(context.job_id, None)
                            return result
                        context.run_again = False

            return self._enqueue(kind, config, until_settled)

    def _active_of(self, kind: str) -> JobContext | None:
        return next((context for active_kind, context in self._active.values() if active_kind == kind), None)

    def _enqueue(self, kind: str, config: dict, work: JobFunction) -> int:
        context = JobContext(self.store.create_job(kind, config), self.store)
        self._active[context.job_id] = (kind, context)
        self._queue.put((kind, config, work, context))
        return context.job_id

    def cancel(self, job_id: int) -> bool:
        with self._lock:
            entry = self._active.get(job_id)
        if entry:
            entry[1].cancel_event.set()
        return entry is not None

    def busy(self) -> bool:
        with self._lock:
            return bool(self._active)

    def running(self) -> list[tuple[int, str]]:
        """(job id, kind) of every job queued or running, oldest first."""
        with self._lock:
            return [(job_id, kind) for job_id, (kind, _) in sorted(self._active.items())]

    def close(self, timeout: float = 10.0) -> bool:
        """Cancel every queued or running job (a running one stops at its next check), then stop the worker
        thread. Returns False when a job did not reach a check within `timeout` seconds: the thread is a daemon,
        so the process still exits, and the job is marked interrupted when the project is next opened."""
        if not self._thread.is_alive():
            return True
        with self._lock:
            contexts = [context for _, context in self._active.values()]
        for context in contexts:
            context.cancel_event.set()
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, config, work, context = item
            try:
                if context.cancel_event.is_set():
                    self.store.update_job(context.job_id, status="cancelled", message="cancelled before start")
                else:
                    run_job(self.store, kind, config, work, context=context)
            except Cancelled:
                pass
            except Exception as error:  # recorded in the jobs table by run_job; the worker lives on
                refusal = as_refusal(error)
                if refusal is None:
                    logging.getLogger(__name__).exception("job %s (%s) failed", context.job_id, kind)
                else:  # a refusal or a full disk is one line in the server's log too, not a traceback
                    logging.getLogger(__name__).warning("job %s (%s) failed: %s", context.job_id, kind, refusal)
            finally:
                with self._lock:
                    self._active.pop(context.job_id, None)
                self._queue.task_done()

    def wait(self, timeout: float | None = None) -> None:
        """Block until every submitted job has ended (tests, shutdown)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.busy():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("jobs still running")
            time.sleep(0.05)
