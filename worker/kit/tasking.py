"""What every run task does around its service call: fairness, re-queues and retries.

- Fairness: a task takes one of its tenant's `tenant_max_concurrent_tasks` Redis slots (leased,
  renewed while it works). A full tenant re-queues the task with a short countdown; that is not
  a retry and never fails the run, so a big backfill only waits its turn.
- A run held by another delivery (`AlreadyRunning`) is re-queued the same way.
- Transient failures retry with exponential backoff and jitter while the run is younger than the
  retry deadline; then the run stays `retryable` (the service recorded it). Permanent failures
  were recorded by the service with Zoom's code and message; the task just ends.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import Any

from celery import Task

from worker.db import session_scope
from worker.kit import runs
from worker.kit.locks import TenantSlot, renewing
from worker.models import RunStatus, SyncRun, utcnow
from worker.models.base import as_utc
from worker.settings import get_settings

log = logging.getLogger(__name__)

RETRY_CAP_SECONDS = 600.0
MAX_RETRIES = 8


class RunTask(Task):
    """Base of the run tasks: late acknowledgement, so a killed worker's task is redelivered."""

    acks_late = True
    reject_on_worker_lost = True
    max_retries = MAX_RETRIES


def requeue(task_name: str, run: SyncRun, countdown: float) -> None:
    from worker.dispatch import send

    # Jitter: a tenant's waiting tasks should not all come back in the same second.
    send(task_name, run.id, tenant_id=run.tenant_id, source_id=run.source_id,
         countdown=countdown * random.uniform(1.0, 1.5))


def execute(
    task: Task,
    run_id: str,
    body: Callable[[uuid.UUID], Any],
    *,
    gated: bool = True,
    on_give_up: Callable[[uuid.UUID], Any] | None = None,
) -> str:
    """Load the run, take a tenant slot, call `body(run_id)`; re-queue or retry as needed."""
    rid = uuid.UUID(str(run_id))
    with session_scope() as session:
        run = session.get(SyncRun, rid)
        if run is None:
            log.warning("%s: run %s does not exist (deleted with its source?)", task.name, rid)
            return "missing"
        if run.status in runs.TERMINAL:
            return f"noop: run already {run.status}"
    slot: TenantSlot | None = None
    if gated:
        from worker.kit.redis import get_redis

        slot = TenantSlot(get_redis(), str(run.tenant_id),
                          holder=f"{task.request.id or rid}",
                          limit=get_settings().tenant_max_concurrent_tasks)
        if not slot.acquire():
            requeue(task.name, run, get_settings().requeue_countdown_seconds)
            return "requeued: tenant at its concurrency limit"
    guard: AbstractContextManager[Any] = renewing(slot) if slot is not None else nullcontext()
    try:
        with guard:
            body(rid)
        return "done"
    except runs.AlreadyRunning as exc:
        log.info("%s %s: %s", task.name, rid, exc)
        requeue(task.name, run, get_settings().requeue_countdown_seconds)
        return "requeued: busy"
    except Exception as exc:
        if runs.is_transient(exc) and _may_retry(task, rid):
            countdown = min(RETRY_CAP_SECONDS,
                            get_settings().retry_base_seconds * 2 ** task.request.retries)
            countdown *= random.uniform(0.5, 1.0)
            _back_to_queue(rid, exc, countdown)
            raise task.retry(exc=exc, countdown=countdown) from exc
        if on_give_up is not None and runs.is_transient(exc):
            on_give_up(rid)
        raise


def _may_retry(task: Task, run_id: uuid.UUID) -> bool:
    if task.request.retries >= (task.max_retries or 0):
        return False
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        started = as_utc(run.started_at) if run is not None else None
    deadline = timedelta(seconds=get_settings().retry_deadline_seconds)
    return started is None or utcnow() - started < deadline


def _back_to_queue(run_id: uuid.UUID, exc: BaseException, countdown: float) -> None:
    """The service recorded `retryable`; a retry is coming, so the run is queued again."""
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is None:
            return
        run.status = RunStatus.QUEUED
        run.finished_at = None
        run.details = {**run.details, "last_error": run.error_message,
                       "retry_in_seconds": round(countdown, 1)}
        log.info("run %s retries in %.0fs after %s", run_id, countdown, type(exc).__name__)
