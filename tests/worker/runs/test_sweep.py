"""The sweep finds, in Postgres, every kind of work whose holder is gone, and nothing else:
an expired running lease, a queued message past its grace, the chunk whose turn has come, a
lost connection test. The clock is injected; the broker is the real test Redis."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tests.factories import make_source, make_tenant
from worker import models
from worker.db import session_scope
from worker.models import ConnectionTest, RunKind, RunStatus, SourceStatus, SyncRun
from worker.runs.lease import queued_grace
from worker.scheduling.service import dispatch_due

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def source() -> tuple[uuid.UUID, uuid.UUID]:
    with session_scope() as session:
        s = make_source(session, make_tenant(session), status=SourceStatus.NEW)
        return s.tenant_id, s.id


def add_run(**fields) -> SyncRun:
    tenant_id, source_id = fields.pop("ids")
    fields.setdefault("kind", RunKind.AGGREGATION)
    fields.setdefault("created_at", T0)
    with session_scope() as session:
        run = SyncRun(tenant_id=tenant_id, source_id=source_id, **fields)
        session.add(run)
        return run


def sent(now: dt.datetime) -> set[uuid.UUID]:
    return {r.id for r in dispatch_due(now, enqueue=False)}


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_a_running_run_is_sent_again_once_its_lease_expired_and_not_before() -> None:
    ids = source()
    run = add_run(ids=ids, status=RunStatus.RUNNING, lease_until=T0 + dt.timedelta(seconds=60))
    plan = add_run(ids=ids, kind=RunKind.ACTIVITY, status=RunStatus.RUNNING,
                   lease_until=T0)  # a running plan is only its chunks' roll-up
    # Running since before leases existed: two leases after its start it counts as expired.
    legacy = add_run(ids=ids, status=RunStatus.RUNNING, started_at=T0 - queued_grace())
    assert sent(T0 + dt.timedelta(seconds=59)) == {legacy.id}
    assert sent(T0 + dt.timedelta(seconds=61)) == {run.id}
    # Sent: presumed on its way for a grace, then sent again (a lost re-send is re-sent).
    assert sent(T0 + dt.timedelta(seconds=62)) == set()
    assert sent(T0 + dt.timedelta(seconds=62) + queued_grace(1)) == {run.id, legacy.id}
    with session_scope() as session:
        assert session.get_one(SyncRun, plan.id).status == RunStatus.RUNNING


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_a_queued_run_is_sent_again_after_its_grace_with_growing_waits() -> None:
    run = add_run(ids=source())  # never stamped: its grace counts from its creation
    grace = queued_grace()
    assert sent(T0 + grace - dt.timedelta(seconds=1)) == set()
    now = T0 + grace + dt.timedelta(seconds=1)
    assert sent(now) == {run.id}
    # The first re-send waits one grace, the next two: a long live queue is not flooded.
    assert queued_grace(2) == 2 * grace
    now += grace + dt.timedelta(seconds=1)
    assert sent(now) == {run.id}
    assert sent(now + 2 * grace - dt.timedelta(seconds=1)) == set()
    assert sent(now + 2 * grace + dt.timedelta(seconds=1)) == {run.id}


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_only_the_chunk_whose_turn_has_come_is_sent() -> None:
    ids = source()
    plan = add_run(ids=ids, kind=RunKind.ACTIVITY, status=RunStatus.RUNNING)
    day = dt.timedelta(days=1)

    def chunk(stream: str, n: int, status: RunStatus) -> SyncRun:
        return add_run(ids=ids, kind=RunKind.ACTIVITY, parent_id=plan.id, stream=stream,
                       status=status, window_start=T0 + n * day, window_end=T0 + (n + 1) * day)

    chunk("signins", 0, RunStatus.SUCCEEDED)
    head = chunk("signins", 1, RunStatus.QUEUED)  # its predecessor finished, its message lost
    chunk("signins", 2, RunStatus.QUEUED)  # waits for the head
    chunk("meetings", 0, RunStatus.DEFERRED)
    chunk("meetings", 1, RunStatus.QUEUED)  # waits behind the deferred one
    assert sent(T0 + queued_grace() + dt.timedelta(seconds=1)) == {head.id}


@pytest.mark.usefixtures("clean_db")
def test_a_lost_connection_test_is_sent_again(redis_client) -> None:
    tenant_id, source_id = source()
    with session_scope() as session:
        queued = ConnectionTest(tenant_id=tenant_id, source_id=source_id, created_at=T0)
        running = ConnectionTest(tenant_id=tenant_id, source_id=source_id, created_at=T0,
                                 status=models.TestStatus.RUNNING,
                                 lease_until=T0 + queued_grace() + dt.timedelta(seconds=30))
        done = ConnectionTest(tenant_id=tenant_id, source_id=source_id, created_at=T0,
                              status=models.TestStatus.SUCCEEDED)
        session.add_all([queued, running, done])
    dispatch_due(T0 + queued_grace() + dt.timedelta(seconds=1))
    assert redis_client.llen("connection_tests") == 1
    # The running one's lease is past; the re-sent queued one is within its new grace.
    dispatch_due(T0 + queued_grace() + dt.timedelta(seconds=31))
    assert redis_client.llen("connection_tests") == 2
    with session_scope() as session:
        assert session.get_one(ConnectionTest, done.id).lease_until is None
