"""Enqueue after commit, and never leave a row queued forever when the broker is down."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlmodel import Session

from api.errors import ServiceUnavailable
from worker.models import ConnectionTest, RunStatus, SyncRun, TestStatus, utcnow

log = logging.getLogger("api.queueing")

Enqueue = Callable[..., str]


def enqueue_committed(session: Session, row: ConnectionTest | SyncRun, enqueue: Enqueue) -> None:
    """Send the task for a row the caller has just committed. If the broker refuses, mark the
    row failed (so nobody polls a test that will never run) and answer 503."""
    try:
        enqueue(row.id, tenant_id=row.tenant_id, source_id=row.source_id)
    except Exception:
        log.warning("broker unavailable; %s %s not enqueued", type(row).__name__, row.id,
                    exc_info=True)
        _mark_unsent(session, row)
        raise ServiceUnavailable(
            "the task queue is unreachable; nothing was started, try again shortly",
            checks={"broker": "unreachable"},
        ) from None


def _mark_unsent(session: Session, row: ConnectionTest | SyncRun) -> None:
    now = utcnow()
    if isinstance(row, ConnectionTest):
        row.status = TestStatus.FAILED
        row.message = "the task queue was unreachable; run the test again"
    else:
        row.status = RunStatus.RETRYABLE
        row.error_code = "broker_unavailable"
        row.error_message = "the task queue was unreachable; start the run again"
    row.finished_at = now
    session.add(row)
    try:
        session.commit()
    except Exception:
        session.rollback()
        log.warning("could not mark unsent row %s", row.id, exc_info=True)
