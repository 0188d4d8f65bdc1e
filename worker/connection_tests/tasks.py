"""Celery shell of the connection test (its own queue: never behind a backfill)."""

from __future__ import annotations

import uuid
from typing import Any

from worker.celery_app import celery_app
from worker.connection_tests.service import run_connection_test
from worker.models import TestStatus
from worker.runs.lifecycle import RecordedFailure, is_transient
from worker.runs.task import UNLIMITED, UNRECORDED_RETRY_CAP_SECONDS


@celery_app.task(name="zoom.test_connection", bind=True, acks_late=True,
                 reject_on_worker_lost=True, throws=(RecordedFailure,))
def connection_test_task(self: Any, test_id: str) -> str:
    # Not gated by the tenant's slots: an admin waits for this answer.
    try:
        test = run_connection_test(uuid.UUID(str(test_id)))
    except Exception as exc:
        if not is_transient(exc):
            raise
        # Postgres or Redis away: the outcome is not recorded, so try again until it can be.
        countdown = min(UNRECORDED_RETRY_CAP_SECONDS, 2.0 * 2 ** self.request.retries)
        raise self.retry(exc=exc, countdown=countdown, max_retries=UNLIMITED) from exc
    if test.status == TestStatus.FAILED:
        # Recorded on the test row; a failure state makes Flower count it as one.
        raise RecordedFailure(f"connection test failed: {test.zoom_error_code or 'see the test'}")
    return f"{test.status}: {test.zoom_error_code or 'ok'}"
