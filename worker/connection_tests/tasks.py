"""Celery shell of the connection test (its own queue: never behind a backfill)."""

from __future__ import annotations

import uuid

from worker.celery_app import celery_app
from worker.connection_tests.service import run_connection_test


@celery_app.task(name="zoom.test_connection", acks_late=True, reject_on_worker_lost=True)
def connection_test_task(test_id: str) -> str:
    # Not gated by the tenant's slots: an admin waits for this answer.
    test = run_connection_test(uuid.UUID(str(test_id)))
    return f"{test.status}: {test.zoom_error_code or 'ok'}"
