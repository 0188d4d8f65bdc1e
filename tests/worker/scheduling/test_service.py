"""Schedules kept in Postgres: local-time crons, changes picked up, nothing lost to a Redis
flush, no double dispatch, and only healthy sources scheduled. The clock is injected."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from sqlmodel import col, select

from tests.factories import make_source, make_tenant
from worker.db import session_scope
from worker.models import RunKind, RunStatus, Source, SourceStatus, SyncRun
from worker.scheduling.cron import default_cron, next_fire
from worker.scheduling.service import compute_next, dispatch_due

T0 = dt.datetime(2026, 6, 1, 0, 0, tzinfo=dt.UTC)


def add(**fields) -> uuid.UUID:
    fields.setdefault("status", SourceStatus.ACTIVE)
    with session_scope() as session:
        source = make_source(session, make_tenant(session), **fields)
        compute_next(source, T0)
        return source.id


def kinds(runs: list[SyncRun]) -> list[tuple[uuid.UUID, str]]:
    return sorted((r.source_id, str(r.kind)) for r in runs)


def stored_runs() -> list[SyncRun]:
    with session_scope() as session:
        return list(session.exec(select(SyncRun).where(col(SyncRun.parent_id).is_(None))))


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_a_schedule_fires_at_its_local_time_and_moves_to_the_next_day() -> None:
    source_id = add(activity_cron="30 9 * * *", aggregation_cron="0 22 * * 0",
                    timezone="Europe/Paris")
    # 09:30 in Paris in June is 07:30 UTC.
    assert dispatch_due(T0.replace(hour=7, minute=29), enqueue=False) == []
    fired = dispatch_due(T0.replace(hour=7, minute=30), enqueue=False)
    assert kinds(fired) == [(source_id, RunKind.ACTIVITY)]
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        assert source.next_activity_at == dt.datetime(2026, 6, 2, 7, 30, tzinfo=dt.UTC)
        # Sunday 22:00 Paris = 20:00 UTC; 2026-06-07 is a Sunday.
        assert source.next_aggregation_at == dt.datetime(2026, 6, 7, 20, 0, tzinfo=dt.UTC)
    assert dispatch_due(T0.replace(hour=7, minute=31), enqueue=False) == []


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_a_changed_schedule_is_picked_up_at_the_next_tick() -> None:
    source_id = add(activity_cron="0 12 * * *", aggregation_cron="0 12 * * *")
    with session_scope() as session:  # what the API does on PATCH
        source = session.get_one(Source, source_id)
        source.activity_cron = "5 0 * * *"
        compute_next(source, T0)
    fired = dispatch_due(T0 + dt.timedelta(minutes=5), enqueue=False)
    assert kinds(fired) == [(source_id, RunKind.ACTIVITY)]


def test_default_schedules_are_daily_and_spread_by_source() -> None:
    minutes = {default_cron(uuid.uuid4(), "activity").split()[0] for _ in range(40)}
    assert len(minutes) > 10
    fire = next_fire(default_cron(uuid.uuid4(), "activity"), "UTC", T0)
    assert T0 < fire <= T0 + dt.timedelta(days=1)


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_unhealthy_sources_are_not_scheduled() -> None:
    healthy = add(activity_cron="0 1 * * *", aggregation_cron="0 1 * * *")
    for status in (SourceStatus.FAILING, SourceStatus.REAUTHORIZE, SourceStatus.DISABLED):
        sid = add(activity_cron="0 1 * * *", aggregation_cron="0 1 * * *")
        with session_scope() as session:
            source = session.get_one(Source, sid)
            source.status = status
            # Even with stale next times left behind, the status keeps it out.
            source.next_activity_at = T0
    fired = dispatch_due(T0 + dt.timedelta(hours=1), enqueue=False)
    assert {r.source_id for r in fired} == {healthy}
    with session_scope() as session:
        failing = session.exec(select(Source).where(Source.status == SourceStatus.FAILING)).one()
        compute_next(failing, T0)
        assert failing.next_activity_at is None
        assert failing.next_aggregation_at is None


@pytest.mark.usefixtures("clean_db")
def test_a_redis_flush_between_ticks_loses_no_schedule_and_no_run(redis_client) -> None:
    source_id = add(activity_cron="0 1 * * *", aggregation_cron="0 2 * * *")
    first = dispatch_due(T0 + dt.timedelta(hours=1))  # really enqueued on the test broker
    assert kinds(first) == [(source_id, RunKind.ACTIVITY)]
    assert redis_client.llen("activity") == 1
    redis_client.flushdb()  # the message is lost; the schedule is not

    # Within its grace (2 x the lease) the queued run is presumed on its way: not sent again.
    assert dispatch_due(T0 + dt.timedelta(hours=1, seconds=30)) == []
    # At the next fire, the new run goes out, and the lost one (its grace long past) again.
    second = dispatch_due(T0 + dt.timedelta(hours=2))
    assert kinds(second) == [(source_id, RunKind.ACTIVITY), (source_id, RunKind.AGGREGATION)]
    assert first[0].id in {r.id for r in second}
    assert redis_client.llen("activity") == 1
    assert redis_client.llen("aggregation") == 1
    with session_scope() as session:
        assert session.get_one(SyncRun, first[0].id).details["sends"] == 2


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_two_dispatchers_at_once_do_not_double_enqueue() -> None:
    ids = {add(activity_cron="0 1 * * *", aggregation_cron="0 1 * * *") for _ in range(15)}
    barrier = threading.Barrier(4)
    results: list[list[SyncRun]] = []

    def tick() -> None:
        barrier.wait()
        results.append(dispatch_due(T0 + dt.timedelta(hours=1), enqueue=False))

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dispatched = [r for batch in results for r in batch]
    assert len(dispatched) == 30
    assert sorted(kinds(dispatched)) == sorted(kinds(stored_runs()))
    assert {r.source_id for r in dispatched} == ids


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_deferred_chunks_resume_when_their_time_has_come() -> None:
    source_id = add(activity_cron="0 23 * * *", aggregation_cron="0 23 * * *")
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        plan = SyncRun(tenant_id=source.tenant_id, source_id=source_id, kind=RunKind.ACTIVITY,
                       status=RunStatus.DEFERRED)
        session.add(plan)
        session.flush()
        chunk = SyncRun(tenant_id=source.tenant_id, source_id=source_id, parent_id=plan.id,
                        kind=RunKind.ACTIVITY, stream="signins", status=RunStatus.DEFERRED,
                        window_start=T0, window_end=T0 + dt.timedelta(days=1),
                        checkpoint={"not_before": (T0 + dt.timedelta(hours=3)).isoformat()},
                        details={"heavy_cost": 2})
        session.add(chunk)
    assert dispatch_due(T0 + dt.timedelta(hours=2), enqueue=False) == []
    resumed = dispatch_due(T0 + dt.timedelta(hours=3), enqueue=False)
    assert [r.id for r in resumed] == [chunk.id]
    with session_scope() as session:
        assert session.get_one(SyncRun, chunk.id).status == RunStatus.QUEUED
        assert session.get_one(SyncRun, plan.id).status == RunStatus.RUNNING


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_a_deferred_aggregation_goes_again_after_its_pause() -> None:
    source_id = add(activity_cron="0 23 * * *", aggregation_cron="0 23 * * *")
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        run = SyncRun(tenant_id=source.tenant_id, source_id=source_id,
                      kind=RunKind.AGGREGATION, status=RunStatus.DEFERRED,
                      checkpoint={"not_before": (T0 + dt.timedelta(minutes=5)).isoformat()})
        session.add(run)
    assert dispatch_due(T0 + dt.timedelta(minutes=4), enqueue=False) == []
    assert [r.id for r in dispatch_due(T0 + dt.timedelta(minutes=5), enqueue=False)] == [run.id]


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_a_tick_keeps_taking_batches_while_they_come_back_full(
    monkeypatch
) -> None:
    from worker.scheduling import service

    monkeypatch.setattr(service, "BATCH", 4)
    ids = {add(activity_cron="0 1 * * *", aggregation_enabled=False) for _ in range(10)}
    sent = service.dispatch_backlog(now=T0 + dt.timedelta(hours=1), enqueue=False)
    assert sent == 10
    assert {r.source_id for r in stored_runs()} == ids


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_a_tick_stops_at_its_budget_and_leaves_the_rest_for_the_next(
    monkeypatch
) -> None:
    from worker.scheduling import service

    monkeypatch.setattr(service, "BATCH", 4)
    for _ in range(10):
        add(activity_cron="0 1 * * *", aggregation_enabled=False)
    later = T0 + dt.timedelta(hours=1)
    assert service.dispatch_backlog(0.0, now=later, enqueue=False) == 4
    assert service.dispatch_backlog(now=later, enqueue=False) == 6
