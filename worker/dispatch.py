"""Enqueueing work by task name, with ids only.

The API and beat use these functions and never import task bodies. Callers must commit the row
first (enqueue after commit): a fast worker would otherwise look for a row that does not exist.
Every message carries the tenant and source ids in its headers (the workers' log context), and
what Flower shows as its kwargs names them too (``shown_kwargs``), so an operator recognises and
can search one tenant's tasks; arguments are ids, never credentials.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from sqlmodel import col, select

from worker.db import get_engine
from worker.models import Source, Tenant
from worker.queues import TASK_ROUTES

log = logging.getLogger(__name__)

# Names change rarely (a renamed tenant shows its new name within this time); the cache keeps a
# busy tenant's requeues from reading Postgres for every message.
_NAMES_TTL = 300.0
_NAMES_MAX = 4096
_names: dict[uuid.UUID, tuple[float, str, str]] = {}


def _tenant_and_source_names(source_id: uuid.UUID) -> tuple[str, str] | None:
    hit = _names.get(source_id)
    if hit is not None and time.monotonic() - hit[0] < _NAMES_TTL:
        return hit[1], hit[2]
    try:
        with get_engine().connect() as conn:
            row = conn.execute(
                select(col(Tenant.name), col(Source.name))
                .join(Source, col(Source.tenant_id) == col(Tenant.id))
                .where(col(Source.id) == source_id)
            ).first()
    except Exception as exc:  # a label only: the message goes out with the ids alone
        log.debug("no names for the task label of source %s: %s", source_id, type(exc).__name__)
        return None
    if row is None:
        return None
    if len(_names) >= _NAMES_MAX:
        _names.clear()
    _names[source_id] = (time.monotonic(), row[0], row[1])
    return row[0], row[1]


def shown_kwargs(tenant_id: uuid.UUID, source_id: uuid.UUID) -> str:
    """What Flower shows as a task's kwargs (the message's ``kwargsrepr``; the task gets no
    kwargs): the tenant's and the source's names, which an operator recognises and Flower's
    search box matches, and their ids. Names are the operator's own labels, never a secret; the
    task name stays plain (Flower's Prometheus series are per task name, and one per tenant
    would grow without bound)."""
    names = _tenant_and_source_names(source_id)
    shown: dict[str, str] = {}
    if names is not None:
        shown = {"tenant": names[0], "source": names[1]}
    shown.update(tenant_id=str(tenant_id), source_id=str(source_id))
    return repr(shown)


def send(
    task_name: str,
    record_id: uuid.UUID,
    *,
    tenant_id: uuid.UUID,
    source_id: uuid.UUID,
    countdown: float | None = None,
    task_id: str | None = None,
) -> str:
    # Here, not at the top: importing it builds the Celery app from the settings (broker URL),
    # which importers of this module (the API, the CLI, tests) may not have in place yet.
    from worker.celery_app import celery_app

    options: dict[str, Any] = {
        "queue": str(TASK_ROUTES[task_name]),
        "headers": {"tenant_id": str(tenant_id), "source_id": str(source_id)},
        "argsrepr": f"['{record_id}']",
        "kwargsrepr": shown_kwargs(tenant_id, source_id),
        # Outcomes live in the run records in Postgres. Without this the Redis result backend
        # subscribes the sender to a channel per task: ~13% of an API enqueue (bench finding 4).
        "ignore_result": True,
    }
    if countdown:
        options["countdown"] = countdown
    if task_id:
        # A re-queue keeps its task id, so Flower shows one task, not one per wait.
        options["task_id"] = task_id
    result = celery_app.send_task(task_name, args=[str(record_id)], **options)
    return str(result.id)


def enqueue_connection_test(
    test_id: uuid.UUID, *, tenant_id: uuid.UUID, source_id: uuid.UUID
) -> str:
    return send("zoom.test_connection", test_id, tenant_id=tenant_id, source_id=source_id)


def enqueue_activity_chunk(
    run_id: uuid.UUID, *, tenant_id: uuid.UUID, source_id: uuid.UUID, countdown: float | None = None
) -> str:
    return send("zoom.sync_activity_chunk", run_id, tenant_id=tenant_id, source_id=source_id,
                countdown=countdown)


def task_for_run(run: Any) -> str:
    """The task that executes a SyncRun row: by kind; an activity run with a parent is a chunk."""
    kind = str(run.kind)
    if kind == "aggregation":
        return "zoom.aggregate"
    if kind == "correlation":
        return "zoom.correlate"
    if kind == "activity":
        return "zoom.sync_activity_chunk" if run.parent_id else "zoom.sync_activity"
    raise ValueError(f"no task runs {kind!r} runs")


def enqueue_run(run: Any, *, countdown: float | None = None) -> str:
    """Enqueue the task of a committed SyncRun row (ids only)."""
    return send(task_for_run(run), run.id, tenant_id=run.tenant_id, source_id=run.source_id,
                countdown=countdown)


def enqueue_dispatch_due() -> str:
    from worker.celery_app import celery_app  # as in `send`: built on first use

    return str(celery_app.send_task("scheduling.dispatch_due",
                                    queue=str(TASK_ROUTES["scheduling.dispatch_due"])).id)
