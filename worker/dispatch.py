"""Enqueueing work by task name, with ids only.

The API and beat use these functions and never import task bodies. Callers must commit the row
first (enqueue after commit): a fast worker would otherwise look for a row that does not exist.
Every message carries the tenant and source in its headers, which Flower shows, so an operator
can filter one tenant's tasks; arguments are ids, never credentials.
"""

from __future__ import annotations

import uuid
from typing import Any

from worker.queues import TASK_ROUTES


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
        # The task name stays plain (no tenant in it): Flower's Prometheus series are per task
        # name, and one series per tenant would grow without bound. The tenant goes into what
        # Flower shows as kwargs instead, which its search box matches. Still ids only.
        "argsrepr": f"['{record_id}']",
        "kwargsrepr": f"{{'tenant': '{tenant_id}', 'source': '{source_id}'}}",
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
