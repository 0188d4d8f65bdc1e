"""One daily Heavy budget per account: reservations and requests in one counter, estimates from
what the account has, windows split to fit a day, and deferred chunks re-admitted day after day
(simulated days: the clock is injected) until nothing is left."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

import pytest
import redis
from sqlmodel import col, select

from tests.factories import make_source, make_tenant
from worker.activity import planner
from worker.activity.planner import heavy_budget, heavy_reservation, plan_activity
from worker.db import session_scope
from worker.models import (
    HostUsage,
    RunKind,
    RunStatus,
    Source,
    SourceStatus,
    Stream,
    SyncRun,
    ZoomUser,
)
from worker.ratelimit.bucket import AccountLimiter
from worker.ratelimit.budget import DailyBudget, charging, epoch_day, utc_day
from worker.ratelimit.plans import PLAN_LIMITS, CategoryLimit
from worker.scheduling.service import resumable_runs
from worker.zoom.errors import ZoomRateLimited


def budget(client: redis.Redis, cap_share: float = 0.001) -> DailyBudget:
    # Pro: 30,000 Heavy calls a day; x 0.001 = 30.
    return DailyBudget(client, f"acct-{uuid.uuid4().hex[:8]}", "pro", cap_share)


def test_a_reservation_fits_or_is_refused_and_is_kept_once(redis_client: redis.Redis) -> None:
    b = budget(redis_client)
    today = dt.date(2026, 6, 1)
    assert b.cap() == 30
    assert b.reserve("a", 20, today) == 20
    assert b.reserve("a", 25, today) == 20  # a second tick does not reserve twice
    assert b.reserve("b", 11, today) is None
    assert b.reserve("b", 10, today) == 10
    assert b.state(today).free == 0
    assert b.reserve("c", 5, today + dt.timedelta(days=1)) == 5  # a new day, a new budget


def test_a_chunk_bigger_than_a_day_takes_a_whole_fresh_day(redis_client: redis.Redis) -> None:
    b = budget(redis_client)
    today = dt.date(2026, 6, 1)
    assert b.reserve("huge", 24_667, today) == 30
    assert b.reserve("small", 1, today) is None


def fast_limiter(client: redis.Redis, b: DailyBudget) -> AccountLimiter:
    """The budget's account at the budget's daily cap, without the per-second pacing."""
    limits = {c: CategoryLimit(10_000 / b.share, lim.daily, lim.daily_group)
              for c, lim in PLAN_LIMITS["pro"].items()}
    return AccountLimiter(client, b.account, "pro", b.share, limits=limits,
                          sleep=lambda _s: None)


def test_requests_draw_on_their_reservation_and_the_rest_goes_back(
    redis_client: redis.Redis,
) -> None:
    b = budget(redis_client)
    limiter = fast_limiter(redis_client, b)
    today = dt.datetime.fromtimestamp(redis_client.time()[0], dt.UTC).date()
    assert b.reserve("chunk", 10, today) == 10
    with charging("chunk"):
        for _ in range(3):
            limiter.acquire("heavy")
    state = b.state(today)
    assert (state.used, state.reserved) == (3, 7)  # not counted twice while it runs
    assert b.release("chunk", today) == 7
    assert (b.state(today).used, b.state(today).reserved) == (3, 0)
    assert limiter.daily_used("heavy") == 3


def test_an_unreserved_request_leaves_admitted_chunks_their_day(
    redis_client: redis.Redis,
) -> None:
    b = budget(redis_client)
    limiter = fast_limiter(redis_client, b)
    today = dt.datetime.fromtimestamp(redis_client.time()[0], dt.UTC).date()
    assert b.reserve("admitted", 30, today) == 30
    with pytest.raises(ZoomRateLimited) as info:
        limiter.acquire("heavy")
    assert info.value.daily
    with charging("admitted"):
        limiter.acquire("heavy")  # its own reservation still pays
    limiter.acquire("light")  # no daily cap on Pro's Light calls


# --- the planner and the daily re-admission ------------------------------------------------

NOW = dt.datetime.now(dt.UTC).replace(hour=0, minute=10, second=0, microsecond=0)


def add_source(**fields: object) -> uuid.UUID:
    fields.setdefault("status", SourceStatus.ACTIVE)
    fields.setdefault("plan", "pro")
    account = f"acct-{uuid.uuid4().hex[:8]}"
    with session_scope() as session:
        return make_source(session, make_tenant(session), credentials={
            "client_id": "cid", "client_secret": "csecret", "account_id": account}, **fields).id


def add_host_usage(source_id: uuid.UUID, first: dt.date, days: int, hosts: int,
                   meetings_each: int) -> None:
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        for i in range(hosts):
            session.add(HostUsage(tenant_id=source.tenant_id, source_id=source_id,
                                  user_zoom_id=f"host-{i}", period_start=first,
                                  period_end=first + dt.timedelta(days=days - 1),
                                  meetings=meetings_each))


def plan(source_id: uuid.UUID, streams: list[str], start: dt.datetime | None,
         end: dt.datetime | None, redis_client: redis.Redis, now: dt.datetime = NOW) -> uuid.UUID:
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        run = SyncRun(tenant_id=source.tenant_id, source_id=source_id, kind=RunKind.ACTIVITY,
                      window_start=start, window_end=end, details={"streams": streams})
        session.add(run)
        plan_id = run.id
    plan_activity(plan_id, now=now, redis_client=redis_client, enqueue=False)
    return plan_id


def chunks(plan_id: uuid.UUID) -> list[SyncRun]:
    with session_scope() as session:
        return list(session.exec(select(SyncRun).where(SyncRun.parent_id == plan_id)
                                 .order_by(col(SyncRun.window_start))))


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_meetings_of_an_account_without_history_cost_what_it_has_not_its_licences() -> None:
    # The account: 37,000 users (24,666 licensed), no meetings, a cap of 24,000.
    source_id = add_source(rate_share=0.8)
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        session.add_all([ZoomUser(tenant_id=source.tenant_id, source_id=source_id,
                                  zoom_id=f"u{i}", email=f"u{i}@x.test", type=2)
                         for i in range(300)])
    with session_scope() as session:
        first, last = NOW.date() - dt.timedelta(days=20), NOW.date() - dt.timedelta(days=1)
        assert planner.estimate_heavy_cost(session, source_id, Stream.MEETINGS, first, last,
                                           now=NOW) == 1
    add_host_usage(source_id, NOW.date() - dt.timedelta(days=30), 30, hosts=4, meetings_each=30)
    with session_scope() as session:
        # 4 hosts, 4 x 30 meetings x 20/30 of the month = 80: 1 host list + 4 + 80.
        assert planner.estimate_heavy_cost(session, source_id, Stream.MEETINGS, first, last,
                                           now=NOW) == 85
        resumed = planner.estimate_heavy_cost(session, source_id, Stream.MEETINGS, first, last,
                                              {"hosts_done": ["host-0", "host-1"]}, now=NOW)
        assert resumed == 1 + 2 * 21


@pytest.mark.usefixtures("clean_db")
def test_a_window_costing_more_than_a_day_is_split_by_days(
    redis_client: redis.Redis,
) -> None:
    source_id = add_source(rate_share=0.001)  # 30 Heavy calls a day
    start = NOW - dt.timedelta(days=20)
    add_host_usage(source_id, start.date(), 20, hosts=5, meetings_each=40)  # ~206 calls
    plan_id = plan(source_id, [Stream.MEETINGS], start, NOW, redis_client)
    parts = chunks(plan_id)
    assert len(parts) > 6
    assert all(p.details["heavy_cost"] <= 30 for p in parts)
    # Contiguous days covering the window exactly, in order.
    assert parts[0].window_start == planner.day_start(start.date())
    assert parts[-1].window_end == NOW
    for a, b in itertools.pairwise(parts):
        assert a.window_end == b.window_start
    admitted = [p for p in parts if p.status == RunStatus.QUEUED]
    assert admitted
    assert sum(p.details["heavy_reserved"]["calls"] for p in admitted) <= 30
    assert {p.status for p in parts} == {RunStatus.QUEUED, RunStatus.DEFERRED}


def finish_queued(plan_id: uuid.UUID, redis_client: redis.Redis, day: dt.date,
                  spend: float = 1.0, calls: int | None = None) -> list[SyncRun]:
    """What the workers would do with the queued chunks: spend `spend` of each reservation
    (as the limiter's script does), succeed, and give back the rest (the chunk's end)."""
    done = []
    for chunk in chunks(plan_id):
        if chunk.status != RunStatus.QUEUED:
            continue
        held = chunk.details.get("heavy_reserved") or {}
        with session_scope() as session:
            source = session.get_one(Source, chunk.source_id)
            b = heavy_budget(redis_client, source)
        if held.get("day") == day.isoformat():
            used = int(held["calls"] * spend) if calls is None else calls
            key = b.key(day)
            redis_client.hincrby(key, "used", used)
            redis_client.hincrby(key, f"r:{chunk.id}", -used)
            redis_client.hincrby(key, "reserved", -used)
        with heavy_reservation(chunk.id, redis_client):
            pass
        with session_scope() as session:
            run = session.get_one(SyncRun, chunk.id)
            run.status = RunStatus.SUCCEEDED
            planner.roll_up(session, plan_id)
        done.append(chunk)
    return done


@pytest.mark.usefixtures("clean_db")
def test_deferred_chunks_are_readmitted_every_day_by_value_until_none_is_left(
    redis_client: redis.Redis,
) -> None:
    source_id = add_source(rate_share=0.001)  # 30 Heavy calls a day
    start = NOW - dt.timedelta(days=20)
    add_host_usage(source_id, start.date(), 20, hosts=5, meetings_each=40)
    plan_id = plan(source_id, [Stream.MEETINGS, Stream.SIGNINS, Stream.OPERATION_LOGS],
                   start, NOW, redis_client)
    total = sum(c.details["heavy_cost"] for c in chunks(plan_id))
    first_day = [c for c in chunks(plan_id) if c.status == RunStatus.QUEUED]
    # Value first: the sign-ins and the operation logs are in today's budget.
    assert {str(c.stream) for c in first_day} >= {Stream.SIGNINS, Stream.OPERATION_LOGS}
    days = 0
    for offset in range(30):
        day_now = NOW + dt.timedelta(days=offset, minutes=5 if offset else 0)
        day = utc_day(day_now)
        if offset:
            with session_scope() as session:
                resumable_runs(session, day_now, redis_client)
        with session_scope() as session:
            state = heavy_budget(redis_client, session.get_one(Source, source_id)).state(day)
        assert state.used + state.reserved <= 30
        # Spent until the next chunk of each chain does not fit: nothing that fits waits.
        heads = {}
        for c in chunks(plan_id):
            if c.status == RunStatus.DEFERRED:
                heads.setdefault(str(c.stream), c)
        assert all(state.free < c.details["heavy_cost"] for c in heads.values()), state
        if finish_queued(plan_id, redis_client, day):
            days = offset + 1
        if all(c.status == RunStatus.SUCCEEDED for c in chunks(plan_id)):
            break
    assert all(c.status == RunStatus.SUCCEEDED for c in chunks(plan_id))
    # Halved windows cost between half a day and a day: about two parts a day at worst.
    assert days <= 2 * total // 30 + 1, (days, total)
    with session_scope() as session:
        assert session.get_one(SyncRun, plan_id).status == RunStatus.SUCCEEDED


@pytest.mark.usefixtures("clean_db")
def test_an_estimate_that_proves_too_high_gives_the_day_back_to_the_next_chunks(
    redis_client: redis.Redis,
) -> None:
    source_id = add_source(rate_share=0.001)  # 30 Heavy calls a day
    start = NOW - dt.timedelta(days=20)
    add_host_usage(source_id, start.date(), 20, hosts=5, meetings_each=40)
    first = plan(source_id, [Stream.MEETINGS], start, NOW, redis_client)
    admitted = [c for c in chunks(first) if c.status == RunStatus.QUEUED]
    with session_scope() as session:
        b = heavy_budget(redis_client, session.get_one(Source, source_id))
    assert b.state(NOW.date()).free < 30 // 2
    # Zoom had no meetings after all (the usage rows were wrong): one call each, the rest
    # of each reservation goes back when the chunk ends.
    finish_queued(first, redis_client, NOW.date(), calls=1)
    state = b.state(NOW.date())
    assert (state.used, state.reserved) == (len(admitted), 0)
    # The day is free again for the next plan (an operator's re-run of the same window).
    second = plan(source_id, [Stream.MEETINGS], start, NOW, redis_client)
    assert chunks(second)[0].status == RunStatus.QUEUED


def test_day_numbers_match_the_limiters_clock() -> None:
    assert epoch_day(dt.date(1970, 1, 2)) == 1
    assert epoch_day(dt.date(2026, 6, 1)) == int(
        dt.datetime(2026, 6, 1, tzinfo=dt.UTC).timestamp()) // 86400


def daily_plan(source_id: uuid.UUID, streams: list[str], redis_client: redis.Redis,
               now: dt.datetime) -> uuid.UUID:
    """A scheduled sync: no window of its own, each stream from its watermark."""
    return plan(source_id, streams, None, None, redis_client, now)


@pytest.mark.usefixtures("clean_db")
def test_a_daily_plan_leaves_a_deferred_chain_to_readmission_instead_of_adding_another(
    redis_client: redis.Redis,
) -> None:
    source_id = add_source(rate_share=0.001)  # 30 Heavy calls a day
    add_host_usage(source_id, NOW.date() - dt.timedelta(days=20), 20, hosts=5, meetings_each=40)
    backfill = daily_plan(source_id, [Stream.MEETINGS, Stream.OPERATION_LOGS], redis_client, NOW)
    assert any(c.status == RunStatus.DEFERRED for c in chunks(backfill))
    finish_queued(backfill, redis_client, NOW.date())
    plans = [backfill]
    for offset in range(1, 20):
        day_now = NOW + dt.timedelta(days=offset, minutes=5)
        with session_scope() as session:
            resumable_runs(session, day_now, redis_client)
        outstanding = any(c.status != RunStatus.SUCCEEDED for c in chunks(backfill))
        # The day's scheduled sync, an hour later: the meetings chain of the backfill is still
        # outstanding (the watermark has not moved), so it plans no second one.
        today = daily_plan(source_id, [Stream.MEETINGS, Stream.OPERATION_LOGS], redis_client,
                           day_now + dt.timedelta(hours=1))
        plans.append(today)
        streams = {str(c.stream) for c in chunks(today)}
        if outstanding:
            assert Stream.MEETINGS not in streams
            with session_scope() as session:
                details = session.get_one(SyncRun, today).details
            assert details["streams_outstanding"] == [Stream.MEETINGS]
        else:
            assert Stream.MEETINGS in streams  # nothing outstanding: planned as usual
            break
        for p in plans:
            finish_queued(p, redis_client, utc_day(day_now))
    else:
        pytest.fail("the backfill's meetings never completed")
    # One chain per day of data: no window of the meetings stream was planned twice.
    with session_scope() as session:
        windows = session.exec(select(SyncRun.window_start).where(
            SyncRun.source_id == source_id, SyncRun.stream == Stream.MEETINGS,
            col(SyncRun.parent_id).in_(plans[:-1]))).all()
    assert len(windows) == len(set(windows))
    assert all(c.status == RunStatus.SUCCEEDED for c in chunks(backfill))


@pytest.mark.usefixtures("clean_db")
def test_a_day_costing_more_than_a_day_is_split_by_hosts(redis_client: redis.Redis) -> None:
    source_id = add_source(rate_share=0.001)  # 30 Heavy calls a day
    day = NOW.date() - dt.timedelta(days=3)
    # One day, 10 hosts with 10 meetings each: 1 host list + 10 + 100 calls, over 3 days' cap.
    add_host_usage(source_id, day, 1, hosts=10, meetings_each=10)
    plan_id = plan(source_id, [Stream.MEETINGS], planner.day_start(day),
                   planner.day_start(day + dt.timedelta(days=1)), redis_client)
    parts = chunks(plan_id)
    assert len(parts) == 4
    assert all(p.details["heavy_cost"] <= 30 for p in parts)
    assert [p.checkpoint["host_part"] for p in parts] == [[i, 4] for i in range(4)]
    # The day's parts follow each other in the chain; the watermark passes the day with the last.
    assert parts[0].window_start == planner.day_start(day)
    assert parts[-1].window_end == planner.day_start(day + dt.timedelta(days=1))
    for a, b in itertools.pairwise(parts):
        assert a.window_end == b.window_start
        assert a.window_start < b.window_start
    assert all(utc_day(p.window_start) == day for p in parts)
    assert all(utc_day(p.window_end - dt.timedelta(microseconds=1)) == day for p in parts)
    # Each host is in exactly one part, whatever the order Zoom lists them in.
    hosts = [f"host-{i}" for i in range(50)]
    split = [planner.hosts_of_part(reversed(hosts), p.checkpoint) for p in parts]
    assert sorted(h for part in split for h in part) == sorted(hosts)
    assert all(split)
    # Re-admitted later, a part is estimated as a part.
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        deferred = next(p for p in parts if p.status == RunStatus.DEFERRED)
        assert planner.readmit(session, redis_client, source, deferred,
                               NOW + dt.timedelta(days=1))
        assert deferred.details["heavy_cost"] == parts[1].details["heavy_cost"]
