"""Query jobs: querying a case's suspect in the background, resumably.

``POST /cases/{id}/query`` starts a job (or returns the case's active one);
a pool of ``query_workers`` threads runs them. A job only drives
:meth:`Arbiter.query <secmark.protocol.arbiter.Arbiter.query>`, which
fixes the plan once per case and stores every batch of answers as it comes:
a job that stopped, by a crash or a shutdown, resumes from there when the
service starts again, and no answered input is sent twice. The job's own
row (:mod:`secmark.service.db`) holds its state and progress: inputs
answered so far of the plan's total, an indicative count (after a crash it
may count the batch that was in flight, which is asked again); the
arbiter's stored answers are what counts.

A shutdown lets the batch in flight finish, then stops the job before its
next batch and leaves it queued, to resume at the next start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from secmark.encoding import format_time, utc_now
from secmark.errors import SecmarkError
from secmark.messages.challenge import open_challenge
from secmark.models import Suspect
from secmark.protocol.arbiter import QUERY_PLAN_FILE, Arbiter
from secmark.protocol.case import Case
from secmark.service.audit import AuditLog
from secmark.service.db import Job, ServiceDatabase
from secmark.service.decoys import DecoyPools
from secmark.service.suspects import SuspectFactory

__all__ = ["JobRunner"]

_LOG = logging.getLogger("secmark.service")


class _Stopped(Exception):
    """The service is stopping: the job ends before its next batch.

    Not a SecmarkError on purpose: the query step must not take it for a
    failed query (it would record an error); it leaves the step, whose
    stored answers stay for the resumed job."""


class _Tracked:
    """``suspect``, counting the inputs it answers and refusing to send
    another batch once the service is stopping."""

    def __init__(
        self, suspect: Suspect, stopping: threading.Event, answered: Callable[[int], None]
    ) -> None:
        self._suspect = suspect
        self._stopping = stopping
        self._answered = answered

    def describe(self) -> str:
        return self._suspect.describe()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if self._stopping.is_set():
            raise _Stopped
        answers = self._suspect.predict(batch)
        self._answered(len(batch))
        return answers


def _now() -> str:
    return format_time(utc_now())


class JobRunner:
    """Runs query jobs for ``arbiter``; suspects come from ``suspects``, and
    decoys of pool and overlay commitments from ``decoys``."""

    def __init__(
        self,
        arbiter: Arbiter,
        database: ServiceDatabase,
        audit: AuditLog,
        suspects: SuspectFactory,
        decoys: DecoyPools,
        *,
        workers: int,
    ) -> None:
        self._arbiter = arbiter
        self._db = database
        self._audit = audit
        self._suspects = suspects
        self._decoys = decoys
        self._workers = workers
        self._stopping = threading.Event()
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> list[Job]:
        """Start the workers and resume every job left queued or running; return those."""
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="secmark-query")
        resumed = self._db.active_jobs()
        for job in resumed:
            _LOG.info("resuming query job %s of case %s", job.job_id, job.case_id)
            self._pool.submit(self._run, job)
        return resumed

    def stop(self) -> None:
        """Stop after the batches in flight; queued and stopped jobs stay queued."""
        self._stopping.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def submit(self, case: Case) -> tuple[Job, bool]:
        """The case's active job, or a new one started; True when new.

        The caller holds the case's lock and has checked it is revealed.

        Raises:
            SecmarkError: the case's challenge cannot be read.
        """
        challenge = open_challenge(case.read("challenge.json"), self._arbiter.keys.public_keys)
        total = len(challenge.document.indices) + challenge.document.decoys
        job, new = self._db.start_job(case.name, total, _now())
        if new:
            self._audit.transition(case.name, f"query job {job.job_id} started")
            if self._pool is None:
                raise SecmarkError("the service is not running its query jobs")
            self._pool.submit(self._run, job)
        return job, new

    def _run(self, job: Job) -> None:
        """Run one job to done, failed, or (when stopping) queued again; never raises."""
        if self._stopping.is_set():
            return
        answered = job.answered
        lock = threading.Lock()

        def count(inputs: int) -> None:
            nonlocal answered
            with lock:
                answered = min(job.total, answered + inputs)
                self._db.update_job(job.job_id, _now(), answered=answered)

        try:
            case = self._arbiter.case(job.case_id)
            if not case.at_least("queried"):
                self._db.update_job(job.job_id, _now(), state="running", error=None)
                self._query(case, count)
        except _Stopped:
            self._db.update_job(job.job_id, _now(), state="queued")
            return
        except SecmarkError as error:
            self._fail(job, str(error))
            return
        except Exception:  # noqa: BLE001 - a bug fails the job, logged; the service lives on
            _LOG.exception("query job %s of case %s stopped unexpectedly", job.job_id, job.case_id)
            self._fail(job, "the job stopped on an internal error (see the service's log)")
            return
        self._db.update_job(job.job_id, _now(), state="done", answered=job.total)
        self._audit.transition(job.case_id, f"queried (job {job.job_id})")

    def _query(self, case: Case, count: Callable[[int], None]) -> None:
        document = self._arbiter.commitment_of(case).document
        # A job resumed after its plan was made needs no decoy candidates:
        # the stored plan holds its decoys (a restart without the pool).
        planned = case.exists(QUERY_PLAN_FILE)
        candidates = None if planned else self._decoys.for_family(document.family)
        suspect = self._suspects(
            case.record["suspect"],
            document.family,
            document.labels,
            self._arbiter.responses_of(case),
        )
        try:
            self._arbiter.query(
                case, _Tracked(suspect, self._stopping, count), decoy_pool=candidates
            )
        finally:
            close: Any = getattr(suspect, "close", None)
            if callable(close):
                close()

    def _fail(self, job: Job, reason: str) -> None:
        self._db.update_job(job.job_id, _now(), state="failed", error=reason)
        self._audit.transition(job.case_id, f"query job {job.job_id} failed: {reason}")
