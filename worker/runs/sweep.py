"""The sweep: rows whose holder is gone, found in Postgres and sent again by the beat tick.

- a `running` run whose lease expired (its worker was killed, or Postgres was away while it
  failed and nothing could be recorded): sent again, whoever held it;
- a `queued` run whose message was not picked up within its grace (a Redis flush or restart, an
  enqueue that failed after the commit, a retry Redis could not publish), including the chunk
  whose turn in its stream has come but whose message never went out;
- a `queued` or `running` connection test in the same situation.

A running activity plan is only the roll-up of its chunks and is never sent again itself; a
chunk behind an unfinished one in its stream waits for its turn. Sending twice is harmless: a
finished run ignores the delivery, a held one is re-queued by its lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, not_, or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from worker.db import is_postgres
from worker.models import ConnectionTest, RunKind, RunStatus, SyncRun, TestStatus
from worker.runs.lease import lease, queued_grace
from worker.settings import get_settings

BATCH = 200


def _expired(model: Any, now: datetime, grace: timedelta) -> Any:
    lease_until = col(model.lease_until)
    return or_(lease_until < now,
               and_(lease_until.is_(None), col(model.created_at) < now - grace))


def _lock(stmt: Any, session: Session) -> Any:
    return stmt.with_for_update(skip_locked=True) if is_postgres(session) else stmt


def lost_runs(session: Session, now: datetime, limit: int = BATCH) -> list[SyncRun]:
    earlier = aliased(SyncRun)
    # A chunk is next in its stream when no earlier window of it is still to run.
    blocked = exists().where(
        col(earlier.parent_id) == col(SyncRun.parent_id),
        col(earlier.stream) == col(SyncRun.stream),
        col(earlier.window_start) < col(SyncRun.window_start),
        col(earlier.status).in_([RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.DEFERRED]),
    )
    plan = and_(col(SyncRun.kind) == RunKind.ACTIVITY, col(SyncRun.parent_id).is_(None))
    stmt = (
        select(SyncRun)
        .where(or_(
            # (A running row without a lease predates leases: its start stands in for one.)
            and_(col(SyncRun.status) == RunStatus.RUNNING, not_(plan),
                 or_(col(SyncRun.lease_until) < now,
                     and_(col(SyncRun.lease_until).is_(None),
                          col(SyncRun.started_at) < now - 2 * lease()))),
            and_(col(SyncRun.status) == RunStatus.QUEUED, _expired(SyncRun, now, queued_grace()),
                 or_(col(SyncRun.parent_id).is_(None), not_(blocked))),
        ))
        .order_by(col(SyncRun.created_at))
        .limit(limit)
    )
    return list(session.exec(_lock(stmt, session)).all())


def running_test_lease() -> timedelta:
    """A running test makes one token call and one API call: presumed alive this long."""
    return 2 * lease() + timedelta(seconds=2 * get_settings().zoom_timeout_seconds)


def lost_tests(session: Session, now: datetime, limit: int = BATCH) -> list[ConnectionTest]:
    stmt = (
        select(ConnectionTest)
        .where(col(ConnectionTest.status).in_([TestStatus.QUEUED, TestStatus.RUNNING]),
               _expired(ConnectionTest, now, queued_grace()))
        .order_by(col(ConnectionTest.created_at))
        .limit(limit)
    )
    return list(session.exec(_lock(stmt, session)).all())
