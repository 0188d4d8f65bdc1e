"""Celery shell of the scheduler tick (beat's only entry enqueues it)."""

from __future__ import annotations

from worker.celery_app import celery_app
from worker.scheduling.service import dispatch_backlog


@celery_app.task(name="scheduling.dispatch_due", acks_late=True, ignore_result=True)
def dispatch_due_task() -> int:
    return dispatch_backlog()
