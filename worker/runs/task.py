"""What every run task does around its service call: fairness, re-queues and retries.

- Fairness: a task takes one of its tenant's `tenant_max_concurrent_tasks` Redis slots (leased,
  renewed while it works). A full tenant re-queues the task with a short countdown; that is not
  a retry and never fails the run, so a big backfill only waits its turn.
- A run held by another delivery (`AlreadyRunning`) is re-queued the same way.
- Transient failures retry with exponential backoff and jitter while the run is younger than the
  retry deadline; then the run stays `retryable` (the service recorded it). Permanent failures
  were recorded by the service with Zoom's code and message; the task just ends.
- Nothing is acknowledged while its outcome is unrecorded: when Postgres cannot take the
  record (of a failure, of a retry), the task retries with capped backoff for as long as it
  takes, whatever the retry count. When Redis cannot take the retry either, Celery drops the
  message; the row is `queued` or `running` with a lease that runs out, so the sweep sends it.
- A stopping worker (`StopRequested`) has handed the run back as `queued` and sent it again
  (worker/runs/followups.py); the task ends normally.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from celery import Task
from celery.exceptions import Retry
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from worker.db import session_scope
from worker.dispatch import send
from worker.kit.locks import TenantSlot, renewing
from worker.kit.redis import get_redis
from worker.models import RunStatus, SyncRun, utcnow
from worker.models.base import as_utc
from worker.runs import lifecycle as runs
from worker.runs import stop
from worker.runs.lease import mark_sent, queued_grace
from worker.settings import get_settings
from worker.zoom.errors import ZoomError

log = logging.getLogger(__name__)

RETRY_CAP_SECONDS = 600.0
MAX_RETRIES = 8
# While an outcome cannot be recorded, retry at least this often, and without a retry limit.
UNRECORDED_RETRY_CAP_SECONDS = 30.0
UNLIMITED = 10**9


class RunTask(Task):
    """Base of the run tasks: late acknowledgement, so a killed worker's task is redelivered."""

    acks_late = True
    reject_on_worker_lost = True
    max_retries = MAX_RETRIES
    # Outcomes the run record already explains (Zoom refused, rate-limited, a bad page): Celery
    # logs them at INFO without a traceback and Flower still counts the failure.
    throws = (ZoomError, runs.RecordedFailure)


def requeue(task_name: str, run: SyncRun, countdown: float, task_id: str | None = None
            ) -> float:
    """Send the run's task again after ``countdown`` (with jitter; returned), under the same
    task id when given."""

    # Jitter: a tenant's waiting tasks should not all come back in the same second.
    countdown *= random.uniform(1.0, 1.5)
    send(task_name, run.id, tenant_id=run.tenant_id, source_id=run.source_id,
         countdown=countdown, task_id=task_id)
    # Its message is alive: the sweep must not add copies of a run that only waits its turn.
    try:
        with session_scope() as session:
            session.execute(
                update(SyncRun)
                .where(col(SyncRun.id) == run.id, col(SyncRun.status) == RunStatus.QUEUED)
                .values(lease_until=utcnow() + timedelta(seconds=countdown) + queued_grace())
            )
    except SQLAlchemyError:
        log.info("run %s re-queued; its lease could not be extended", run.id)
    return countdown


def _waiting(task: Task, run: SyncRun, why: str) -> Retry:
    """Re-queue under this delivery's task id and end it as RETRY, not SUCCESS: Flower keeps one
    entry per task (shown retrying while it waits) and its final outcome still shows; a wait is
    not a retry, so the retry count and its backoff are untouched."""
    countdown = requeue(task.name, run, get_settings().requeue_countdown_seconds,
                        task_id=task.request.id)
    return Retry(f"requeued: {why}", when=countdown)


def _backoff(retries: int, cap: float = RETRY_CAP_SECONDS) -> float:
    countdown = min(cap, get_settings().retry_base_seconds * (1 << min(retries, 30)))
    return countdown * random.uniform(0.5, 1.0)


def _unrecorded(task: Task, exc: BaseException, why: str) -> Exception:
    """Postgres (or Redis) could not take what this delivery must record: retry, unlimited."""
    countdown = _backoff(task.request.retries, UNRECORDED_RETRY_CAP_SECONDS)
    log.warning("%s %s: %s (%s); retrying in %.0fs", task.name, task.request.id, why,
                type(exc).__name__, countdown)
    retry: Exception = task.retry(exc=exc, countdown=countdown, max_retries=UNLIMITED)
    return retry


class TenantAtLimit(Exception):
    """The run's tenant has all its slots in use: the delivery waits its turn."""

    def __init__(self, run: SyncRun) -> None:
        super().__init__("tenant at its concurrency limit")
        self.run = run


class Admission:
    """What `hold` enters with the run it loaded, before the run's lock: the tenant slot
    (`gated`), held and renewed until the body ends. It keeps the run it saw, so the shell can
    re-queue or retry that run without reading it again."""

    def __init__(self, task: Task, run_id: uuid.UUID, gated: bool) -> None:
        self.task, self.run_id, self.gated = task, run_id, gated
        self.run: SyncRun | None = None
        # As read before this delivery began it (the retry deadline counts from the first).
        self.started_at: datetime | None = None

    @contextmanager
    def __call__(self, run: SyncRun) -> Iterator[None]:
        self.run, self.started_at = run, as_utc(run.started_at)
        if not self.gated:
            yield
            return
        slot = TenantSlot(get_redis(), str(run.tenant_id),
                          holder=f"{self.task.request.id or self.run_id}",
                          limit=get_settings().tenant_max_concurrent_tasks)
        try:
            acquired = slot.acquire()
        except Exception as exc:
            if not runs.is_transient(exc):
                raise
            raise _unrecorded(self.task, exc, "Redis is unavailable before the run started"
                              ) from exc
        if not acquired:
            raise TenantAtLimit(run)
        with renewing(slot):
            yield


def execute(
    task: Task,
    run_id: str,
    body: Callable[..., Any],
    *,
    gated: bool = True,
    on_give_up: Callable[[uuid.UUID], Any] | None = None,
) -> str:
    """Call `body(run_id, admit=...)` (a service entry point, which holds the run through
    `runs.hold`, loading it once, entering the admission with it); re-queue or retry as
    needed."""
    rid = uuid.UUID(str(run_id))
    admission = Admission(task, rid, gated)
    try:
        ended = body(rid, admit=admission)
        if admission.run is None and isinstance(ended, SyncRun):
            return f"noop: run already {ended.status}"
        return "done"
    except runs.RunMissing:
        log.warning("%s: run %s does not exist (deleted with its source?)", task.name, rid)
        return "missing"
    except TenantAtLimit as exc:
        raise _waiting(task, exc.run, "tenant at its concurrency limit") from None
    except stop.StopRequested:
        return "handed back: the worker is stopping"
    except runs.AlreadyRunning as exc:
        log.info("%s %s: %s", task.name, rid, exc)
        assert admission.run is not None  # raised once the run was loaded and admitted
        raise _waiting(task, admission.run, "busy") from None
    except Retry:
        raise
    except Exception as exc:
        if not runs.is_transient(exc):
            raise
        if admission.run is None:
            # Postgres failed before the run could be read: nothing is recorded, nothing acked.
            raise _unrecorded(task, exc, "Postgres is unavailable before the run started"
                              ) from exc
        if _may_retry(task, admission.started_at):
            countdown = _backoff(task.request.retries)
            try:
                _back_to_queue(rid, exc, countdown)
            except Exception as record_exc:
                if not runs.is_transient(record_exc):
                    raise
                raise _unrecorded(task, exc, "could not record the retry") from record_exc
            raise task.retry(exc=exc, countdown=countdown) from exc
        try:
            # The service recorded `retryable` unless Postgres was the fault: make sure.
            runs.record_failure(rid, exc)
            if on_give_up is not None:
                on_give_up(rid)
        except Exception as record_exc:
            if not runs.is_transient(record_exc):
                raise
            raise _unrecorded(task, exc, "could not record giving up") from record_exc
        raise


def _may_retry(task: Task, started: datetime | None) -> bool:
    if task.request.retries >= (task.max_retries or 0):
        return False
    deadline = timedelta(seconds=get_settings().retry_deadline_seconds)
    return started is None or utcnow() - started < deadline


def _back_to_queue(run_id: uuid.UUID, exc: BaseException, countdown: float) -> None:
    """A retry is coming, so the run is queued again, stamped as sent after the countdown (if
    Redis cannot take the retry, the sweep sends it once that has passed)."""
    with session_scope() as session:
        run = session.get(SyncRun, run_id, with_for_update=True)
        if run is None:
            return
        last_error = run.error_message or runs.error_text(runs.classify(exc), None)
        run.status = RunStatus.QUEUED
        run.finished_at = None
        run.details = {**run.details, "last_error": last_error,
                       "retry_in_seconds": round(countdown, 1)}
        mark_sent(run, countdown=countdown)
        log.info("run %s retries in %.0fs after %s", run_id, countdown, type(exc).__name__)
