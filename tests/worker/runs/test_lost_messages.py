"""The broker loses its messages mid-run (FLUSHDB of the test's Redis database: queued,
unacknowledged and countdown messages, locks, slots and cached tokens all gone): with nothing
done by hand, beat's sweep finds in Postgres what was queued or running and sends it again;
every run and both connection tests end `succeeded`, and the rows equal the fake's truth.

The flush comes when the report chains held for the first insight have just been sent: both of
the worker's processes are busy with report chunks (their locks and slots go) and the other
heads' messages are in the broker's queue (they go too), so the sweep must send them again."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import select

from tests.factories import add_app_source as add_source
from tests.worker.helpers import (
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
from worker.activity.planner import HELD_STREAMS, is_held
from worker.db import session_scope
from worker.models import ConnectionTest, RunKind, RunStatus, Source, SyncRun
from worker.queues import Queue

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


def released_report(run: SyncRun) -> bool:
    """A report chunk held for the first insight, now sent and not yet picked up."""
    return (run.kind == RunKind.ACTIVITY and run.stream in HELD_STREAMS
            and run.status == RunStatus.QUEUED and not is_held(run)
            and int(run.details.get("sends", 0)) >= 1)


def test_a_redis_flush_mid_run_loses_no_work(fake, source, start, redis_client) -> None:
    _, source_id = source
    account = fake.fake.account(0)
    worker = start("worker")
    beat = start("beat")
    fake.fake.set_faults(latency_ms=300)
    start_test(source_id)  # success starts aggregation (then correlation) and activity
    # The sign-ins and the directory are in: the held report heads are sent, more of them than
    # the worker has processes, so some wait in the broker's queue.
    wait_until(lambda: any(released_report(r) for r in all_runs(source_id))
               and redis_client.llen(Queue.ACTIVITY) > 0, 90,
               "released report chunks waiting in the broker's queue", worker, beat)
    # A second source's connection test goes out just before the flush.
    other = add_source(account, account.s2s_app, name="second", status="new")
    start_test(other)
    # (Both of the worker's processes are busy: the test's message is still in the queue.)
    lost = {q.value: redis_client.llen(q) for q in (Queue.CONNECTION_TESTS, Queue.ACTIVITY)}
    print(f"\nmessages lost in the flush: {lost}")  # noqa: T201 - the measurement, shown with -s
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
