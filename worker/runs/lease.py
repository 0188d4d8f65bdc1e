"""Leases in Postgres: until when a run's (or a connection test's) holder is presumed alive.

- Sent (`mark_sent`): a queued row's message should be picked up within `queued_grace()`
  (2 x the lock lease, 2 minutes by default). Each re-send doubles the wait, up to
  `MAX_QUEUED_GRACE`, so a long but live queue is not flooded with copies.
- Working (`RunLease`): a running row is renewed every third of `AI_LOCK_LEASE_SECONDS` by the
  lease renewer, next to its Redis lock and tenant slot. A killed worker stops renewing; one
  lease later the sweep sends the run again.

A renewal that cannot reach Postgres is not a lost lease: the Redis lock still makes the run
exclusive, and the work itself fails on its next write if the database stays away.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from worker.db import session_scope
from worker.models import ConnectionTest, RunStatus, SyncRun, utcnow
from worker.settings import get_settings

log = logging.getLogger(__name__)

MAX_QUEUED_GRACE = timedelta(minutes=30)


def lease() -> timedelta:
    return timedelta(seconds=get_settings().lock_lease_seconds)


def queued_grace(sends: int = 0) -> timedelta:
    """How long a sent message may take to be picked up before the sweep sends it again."""
    return min(2 * lease() * (1 << min(max(sends - 1, 0), 8)), max(MAX_QUEUED_GRACE, 2 * lease()))


def mark_sent(run: SyncRun, now: datetime | None = None, countdown: float = 0) -> None:
    """Stamp a queued run as sent (before the commit that precedes the enqueue)."""
    now = now or utcnow()
    sends = int(run.details.get("sends", 0)) + 1
    run.details = {**run.details, "enqueued_at": now.isoformat(), "sends": sends}
    run.lease_until = now + timedelta(seconds=countdown) + queued_grace(sends)


def mark_test_sent(test: ConnectionTest, now: datetime | None = None) -> None:
    test.lease_until = (now or utcnow()) + queued_grace()


def working_until(now: datetime | None = None) -> datetime:
    return (now or utcnow()) + lease()


class RunLease:
    """The Postgres side of a running run's lease, renewed by `locks.Renewer`."""

    def __init__(self, run_id: uuid.UUID) -> None:
        self.run_id = run_id
        self.name = f"sync_run {run_id}"

    def renew(self) -> bool:
        try:
            with session_scope() as session:
                session.execute(
                    update(SyncRun)
                    .where(SyncRun.id == self.run_id,  # type: ignore[arg-type]
                           SyncRun.status == RunStatus.RUNNING)  # type: ignore[arg-type]
                    .values(lease_until=working_until())
                )
        except SQLAlchemyError as exc:
            log.warning("could not renew the lease of run %s in Postgres (%s); the Redis lock "
                        "still holds it", self.run_id, type(exc).__name__)
        return True

    def release(self) -> None:
        # The run's outcome (finish, failure, hand-back) sets `lease_until` itself.
        pass
