"""First insight first: the backfill admits sign-ins before participant reports, and a source's
insights are "ready" once its sign-in history and directory are stored, whatever the meetings
still waiting for tomorrow's Heavy budget."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlmodel import col, select

from api.routes.sources import to_public
from tests.factories import add_app_source as add_source
from worker.activity import planner
from worker.activity.planner import is_held, plan_activity
from worker.activity.readiness import mark_if_ready
from worker.activity.service import run_chunk
from worker.aggregation.service import run_aggregation
from worker.db import session_scope
from worker.models import HostUsage, RunKind, RunStatus, Source, Stream, StreamCursor, SyncRun
from worker.ratelimit.plans import PLAN_LIMITS, CategoryLimit
from worker.runs import sweep
from worker.scheduling import service as scheduling
from worker.scheduling.service import dispatch_due
from worker.zoom.endpoints import Category


def new_run(source_id: uuid.UUID, kind: RunKind, **fields: object) -> uuid.UUID:
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        run = SyncRun(tenant_id=source.tenant_id, source_id=source_id, kind=kind, **fields)
        session.add(run)
        return run.id


def chunks(plan_id: uuid.UUID) -> list[SyncRun]:
    with session_scope() as session:
        return list(session.exec(select(SyncRun).where(SyncRun.parent_id == plan_id)
                                 .order_by(col(SyncRun.window_start))))


def heavy_calls_a_day(monkeypatch: pytest.MonkeyPatch, cap: int) -> None:
    """The Business plan's daily Heavy cap set to ``cap`` (the limiter and the planner read the
    same table)."""
    for category in (Category.HEAVY, Category.RESOURCE_INTENSIVE):
        limit = PLAN_LIMITS["business"][category]
        monkeypatch.setitem(PLAN_LIMITS["business"], category,
                            CategoryLimit(limit.per_second, cap, limit.daily_group))


def ready_at(source_id: uuid.UUID) -> dt.datetime | None:
    with session_scope() as session:
        return session.get_one(Source, source_id).insights_ready_at


def test_insights_are_ready_with_sign_ins_and_directory_while_meetings_wait(
    zoom, monkeypatch
) -> None:
    account = zoom.fake.account(0)
    # A day of 8 Heavy calls (limiter and planner read the same table): sign-ins first.
    heavy_calls_a_day(monkeypatch, 10)
    source_id = add_source(account, account.s2s_app, rate_share=0.8)
    # The host usage is known: 20 hosts with a meeting a day each, far more than a day's budget.
    today = dt.datetime.now(dt.UTC).date()
    with session_scope() as session:
        tenant_id = session.get_one(Source, source_id).tenant_id
        first = today - dt.timedelta(days=179)
        session.add_all([HostUsage(tenant_id=tenant_id, source_id=source_id,
                                   user_zoom_id=f"h{i}", period_start=first,
                                   period_end=today, meetings=180) for i in range(20)])
    plan_id = new_run(source_id, RunKind.ACTIVITY,
                      details={"streams": [Stream.MEETINGS, Stream.SIGNINS]})
    plan_activity(plan_id, enqueue=False)
    planned = chunks(plan_id)
    signins = [c for c in planned if c.stream == Stream.SIGNINS]
    meetings = [c for c in planned if c.stream == Stream.MEETINGS]
    # Value order: every sign-in window is in today's budget, the participant reports wait.
    assert signins
    assert all(c.status == RunStatus.QUEUED for c in signins)
    assert meetings
    assert all(c.status == RunStatus.DEFERRED for c in meetings)
    for chunk in signins:
        run_chunk(chunk.id, enqueue=False)
    assert ready_at(source_id) is None  # no directory yet
    run_aggregation(new_run(source_id, RunKind.AGGREGATION), enqueue=False)
    ready = ready_at(source_id)
    assert ready is not None
    with session_scope() as session:  # the source API shows it
        assert to_public(session.get_one(Source, source_id)).insights_ready_at == ready
    with session_scope() as session:
        waiting = {session.get_one(SyncRun, c.id).status for c in meetings}
    assert waiting == {RunStatus.DEFERRED}  # ready without them
    # Set once: a later sign-in chunk does not move it.
    later = new_run(source_id, RunKind.ACTIVITY, details={"streams": [Stream.SIGNINS]})
    plan_activity(later, enqueue=False)
    for chunk in chunks(later):
        if chunk.status == RunStatus.QUEUED:
            run_chunk(chunk.id, enqueue=False)
    assert ready_at(source_id) == ready


def test_an_outstanding_sign_in_chunk_keeps_the_insights_not_ready(zoom) -> None:
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    run_aggregation(new_run(source_id, RunKind.AGGREGATION), enqueue=False)
    now = dt.datetime.now(dt.UTC)
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        session.add(StreamCursor(source_id=source_id, stream=Stream.SIGNINS,
                                 tenant_id=source.tenant_id, watermark=now))
        plan = SyncRun(tenant_id=source.tenant_id, source_id=source_id, kind=RunKind.ACTIVITY)
        session.add(plan)
        session.flush()
        session.add(SyncRun(tenant_id=source.tenant_id, source_id=source_id, parent_id=plan.id,
                            kind=RunKind.ACTIVITY, stream=Stream.SIGNINS,
                            status=RunStatus.DEFERRED, window_start=now, window_end=now))
    with session_scope() as session:
        assert not mark_if_ready(session, session.get_one(Source, source_id))
    assert ready_at(source_id) is None


def sent(chunk_id: uuid.UUID) -> bool:
    with session_scope() as session:
        return bool(session.get_one(SyncRun, chunk_id).details.get("sends"))


def test_participant_reports_wait_for_the_sign_in_chain_and_the_directory(zoom) -> None:
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    aggregation = new_run(source_id, RunKind.AGGREGATION)  # the first test's, not run yet
    plan_id = new_run(source_id, RunKind.ACTIVITY,
                      details={"streams": [Stream.MEETINGS, Stream.SIGNINS]})
    plan_activity(plan_id, enqueue=False)
    signins = [c for c in chunks(plan_id) if c.stream == Stream.SIGNINS]
    meetings = [c for c in chunks(plan_id) if c.stream == Stream.MEETINGS]
    assert len(signins) > 1
    assert meetings
    assert all(c.status == RunStatus.QUEUED for c in [*signins, *meetings])
    # Only the sign-in chain is sent; the meetings chain is held, and the sweep leaves it be.
    assert sent(signins[0].id)
    assert not sent(meetings[0].id)
    assert is_held(meetings[0])
    with session_scope() as session:
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)
        assert meetings[0].id not in {r.id for r in sweep.lost_runs(session, later)}
    for chunk in signins:
        assert not sent(meetings[0].id)
        run_chunk(chunk.id, enqueue=False)
    # The sign-ins are in, the directory is not: still held.
    assert not sent(meetings[0].id)
    run_aggregation(aggregation, enqueue=False)  # the directory's end sends them
    assert sent(meetings[0].id)
    with session_scope() as session:
        assert not is_held(session.get_one(SyncRun, meetings[0].id))


def test_the_dispatchers_tick_sends_held_reports_nothing_else_released(
    zoom, redis_client
) -> None:
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    aggregation = new_run(source_id, RunKind.AGGREGATION)
    plan_id = new_run(source_id, RunKind.ACTIVITY,
                      details={"streams": [Stream.MEETINGS, Stream.SIGNINS]})
    plan_activity(plan_id, enqueue=False)
    head = next(c for c in chunks(plan_id) if c.stream == Stream.MEETINGS)
    assert dispatch_due(redis_client=redis_client, enqueue=False) == []  # still waiting
    with session_scope() as session:  # the sign-ins and the directory ended without sending
        for run in session.exec(select(SyncRun).where(
                (SyncRun.parent_id == plan_id) & (SyncRun.stream == Stream.SIGNINS))).all():
            run.status = RunStatus.SUCCEEDED
        session.get_one(SyncRun, aggregation).status = RunStatus.FAILED
    resumed = dispatch_due(redis_client=redis_client, enqueue=False)  # the next tick
    assert [r.id for r in resumed] == [head.id]
    assert sent(head.id)


def test_the_chunk_ending_the_sign_in_chain_sends_the_held_reports(zoom) -> None:
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    plan_id = new_run(source_id, RunKind.ACTIVITY,
                      details={"streams": [Stream.MEETINGS, Stream.SIGNINS]})
    plan_activity(plan_id, enqueue=False)
    signins = [c for c in chunks(plan_id) if c.stream == Stream.SIGNINS]
    head = next(c for c in chunks(plan_id) if c.stream == Stream.MEETINGS)
    for chunk in signins[:-1]:
        run_chunk(chunk.id, enqueue=False)
    assert not sent(head.id)
    run_chunk(signins[-1].id, enqueue=False)
    assert sent(head.id)
    # A plan of meetings alone has nothing to wait for.
    alone = new_run(source_id, RunKind.ACTIVITY, details={"streams": [Stream.MEETINGS]},
                    window_start=head.window_start, window_end=head.window_end)
    plan_activity(alone, enqueue=False)
    assert all(sent(c.id) for c in chunks(alone)[:1])


def test_the_other_report_streams_wait_for_the_sign_in_chain_too(zoom) -> None:
    # Every report is Heavy: host usage, daily usage and the operation logs would take Heavy
    # slots from the sign-in pages the first insight waits for.
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    others = (Stream.HOST_USAGE, Stream.DAILY_USAGE, Stream.OPERATION_LOGS)
    plan_id = new_run(source_id, RunKind.ACTIVITY, details={"streams": [*others, Stream.SIGNINS]})
    plan_activity(plan_id, enqueue=False)
    signins = [c for c in chunks(plan_id) if c.stream == Stream.SIGNINS]
    heads = {s: next(c for c in chunks(plan_id) if c.stream == s) for s in others}
    assert sent(signins[0].id)
    assert not any(sent(h.id) for h in heads.values())
    assert all(is_held(h) for h in heads.values())
    for chunk in signins:
        run_chunk(chunk.id, enqueue=False)
    assert all(sent(h.id) for h in heads.values())


def held_head(source_id: uuid.UUID, signins: RunStatus) -> uuid.UUID:
    """A plan whose host-usage head is held for the first insight, its one sign-in chunk in
    ``signins``; returns the head's id (reserved today: released without re-admission)."""
    now = dt.datetime.now(dt.UTC)
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        plan = SyncRun(tenant_id=source.tenant_id, source_id=source_id, kind=RunKind.ACTIVITY)
        session.add(plan)
        session.flush()
        common = {"tenant_id": source.tenant_id, "source_id": source_id, "parent_id": plan.id,
                  "kind": RunKind.ACTIVITY, "window_start": now - dt.timedelta(days=1),
                  "window_end": now}
        session.add(SyncRun(**common, stream=Stream.SIGNINS, status=signins))
        head = SyncRun(**common, stream=Stream.HOST_USAGE, status=RunStatus.QUEUED,
                       details={planner.HELD: "first_insight",
                                "heavy_reserved": {"day": now.date().isoformat(), "calls": 1}})
        session.add(head)
        session.flush()
        return head.id


def s2s_source(zoom) -> uuid.UUID:
    account = zoom.fake.account(0)
    return add_source(account, account.s2s_app)


def released(redis_client, limit: int) -> list[uuid.UUID]:
    with session_scope() as session:
        return [c.id for c in planner.release_held(session, redis_client,
                                                   dt.datetime.now(dt.UTC), limit=limit)]


def test_heads_still_waiting_for_their_sign_ins_do_not_fill_the_release_batch(
    zoom, redis_client
) -> None:
    # Many sources mid-backfill (four held heads a plan): the head whose turn has come is
    # released however many wait before it.
    source_id = s2s_source(zoom)
    waiting = [held_head(source_id, RunStatus.QUEUED) for _ in range(3)]
    ready = held_head(source_id, RunStatus.SUCCEEDED)
    assert released(redis_client, limit=2) == [ready]
    assert released(redis_client, limit=2) == []
    with session_scope() as session:
        assert all(is_held(session.get_one(SyncRun, h)) for h in waiting)


def test_held_heads_over_the_limit_are_released_by_the_next_calls_oldest_first(
    zoom, redis_client
) -> None:
    source_id = s2s_source(zoom)
    ready = [held_head(source_id, RunStatus.SUCCEEDED) for _ in range(5)]
    assert released(redis_client, limit=2) == ready[:2]
    assert released(redis_client, limit=2) == ready[2:4]
    assert released(redis_client, limit=2) == ready[4:]
    assert released(redis_client, limit=2) == []


def test_one_dispatcher_tick_sends_more_held_heads_than_a_batch(
    zoom, redis_client, monkeypatch
) -> None:
    monkeypatch.setattr(scheduling, "BATCH", 2)
    source_id = s2s_source(zoom)
    ready = [held_head(source_id, RunStatus.SUCCEEDED) for _ in range(5)]
    assert scheduling.dispatch_backlog(redis_client=redis_client, enqueue=False) == len(ready)
    assert all(sent(h) for h in ready)


def test_a_day_split_by_hosts_stores_each_meeting_once_and_the_watermark_after_the_last(
    zoom, monkeypatch
) -> None:
    from worker.models import Meeting

    account = zoom.fake.account(0)
    heavy_calls_a_day(monkeypatch, 100)
    source_id = add_source(account, account.s2s_app, rate_share=0.8)  # 80 Heavy calls a day
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)
    truth = {m["uuid"] for m in account.meetings(day, day)}
    # The usage report says 4 hosts held 120 meetings that day: 125 calls, over a day's 80.
    with session_scope() as session:
        tenant_id = session.get_one(Source, source_id).tenant_id
        session.add_all([HostUsage(tenant_id=tenant_id, source_id=source_id,
                                   user_zoom_id=f"h{i}", period_start=day, period_end=day,
                                   meetings=30) for i in range(4)])
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    plan_id = new_run(source_id, RunKind.ACTIVITY, details={"streams": [Stream.MEETINGS]},
                      window_start=start, window_end=start + dt.timedelta(days=1))
    plan_activity(plan_id, enqueue=False)
    parts = chunks(plan_id)
    assert len(parts) == 2
    watermark = None
    for part in parts:  # the second as the dispatcher re-admits it (the first spent little)
        with session_scope() as session:
            session.get_one(SyncRun, part.id).status = RunStatus.QUEUED
        run_chunk(part.id, enqueue=False)
        with session_scope() as session:
            assert session.get_one(SyncRun, part.id).status == RunStatus.SUCCEEDED
            cursor = session.get(StreamCursor, (source_id, Stream.MEETINGS))
            watermark = cursor.watermark if cursor else None
        if part is not parts[-1]:
            assert watermark is not None
            assert watermark < start + dt.timedelta(days=1)
            with session_scope() as session:
                after_first = set(session.exec(select(Meeting.host_zoom_id).where(
                    Meeting.source_id == source_id)).all())
    assert watermark == start + dt.timedelta(days=1)
    with session_scope() as session:
        stored = session.exec(select(Meeting.uuid).where(Meeting.source_id == source_id)).all()
    assert sorted(stored) == sorted(truth)
    # The first part asked only for its own hosts, the second for the others.
    with session_scope() as session:
        hosts = set(session.exec(select(Meeting.host_zoom_id).where(
            Meeting.source_id == source_id)).all())
    assert after_first == set(planner.hosts_of_part(hosts, parts[0].checkpoint))
    assert 0 < len(after_first) < len(hosts)
