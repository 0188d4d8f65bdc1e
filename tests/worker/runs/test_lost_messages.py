"""The broker loses its messages mid-run (FLUSHDB of the test's Redis database: queued,
unacknowledged and countdown messages, locks, slots and cached tokens all gone): with nothing
done by hand, beat's sweep finds in Postgres what was queued or running and sends it again;
every run and both connection tests end `succeeded`, and the rows equal the fake's truth."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import select

from tests.factories import add_app_source as add_source
from tests.worker.helpers import (
    count,
    new_test,
    stored_event_keys,
    stored_participant_keys,
    stored_users,
    truth_event_keys,
    truth_participant_keys,
    truth_users,
)
from tests.worker.runs.harness import all_runs, wait_until
from worker import dispatch
from worker.db import session_scope
from worker.models import ConnectionTest, RunKind, RunStatus, Source, ZoomUser

pytestmark = pytest.mark.slow


def start_test(source_id: uuid.UUID) -> uuid.UUID:
    test_id = new_test(source_id)
    with session_scope() as session:
        tenant_id = session.get_one(Source, source_id).tenant_id
    dispatch.enqueue_connection_test(test_id, tenant_id=tenant_id, source_id=source_id)
    return test_id


def connection_tests_of(source_id: uuid.UUID) -> list[ConnectionTest]:
    with session_scope() as session:
        return list(session.exec(select(ConnectionTest).where(
            ConnectionTest.source_id == source_id)))


def finished(source_id: uuid.UUID, kinds: set[str]) -> bool:
    runs = all_runs(source_id)
    return {str(r.kind) for r in runs} >= kinds and all(
        r.status not in (RunStatus.QUEUED, RunStatus.RUNNING) for r in runs) and all(
        t.status in ("succeeded", "failed") for t in connection_tests_of(source_id))


def test_a_redis_flush_mid_run_loses_no_work(fake, source, start, redis_client) -> None:
    _, source_id = source
    account = fake.fake.account(0)
    worker = start("worker")
    beat = start("beat")
    fake.fake.set_faults(latency_ms=300)
    start_test(source_id)  # success starts aggregation (then correlation) and activity
    wait_until(lambda: count(ZoomUser, source_id) > 0 and any(
        r.kind == RunKind.ACTIVITY and r.parent_id for r in all_runs(source_id)), 60,
        "aggregation and activity under way", worker, beat)
    # A second source's connection test goes out just before the flush.
    other = add_source(account, account.s2s_app, name="second", status="new")
    start_test(other)
    # (Both of the worker's processes are busy: the test's message is still in the queue.)
    print(f"\nconnection test messages lost in the flush: {redis_client.llen('connection_tests')}")  # noqa: T201 - the measurement, shown with -s
    redis_client.flushdb()
    fake.fake.set_faults(latency_ms=0)

    everything = {RunKind.AGGREGATION, RunKind.CORRELATION, RunKind.ACTIVITY}
    wait_until(lambda: finished(source_id, everything) and finished(other, everything), 240,
               "every run and test to finish", worker, beat)
    for sid in (source_id, other):
        assert [t.status for t in connection_tests_of(sid)] == ["succeeded"]
        for run in all_runs(sid):
            assert run.status == RunStatus.SUCCEEDED, (run.kind, run.stream, run.error_message)
        assert stored_users(sid) == truth_users(account)
        assert stored_event_keys(sid) == truth_event_keys(account, sid)
        assert stored_participant_keys(sid) == truth_participant_keys(account, sid)
    # Some of it was brought back by the sweep, not by the broker.
    assert any(int(r.details.get("sends", 0)) >= 2 for r in all_runs(source_id))
