"""Figure 2c: a backfill against the daily Heavy budget, and the time to the first insight
(issue 14).

Both run the product's own functions in this process, ``WORKERS`` tasks at a time (threads, as
a worker's pool would):
the planner, the chunks (``run_chunk`` through the production client, shared token and Redis
limiter, against fakezoom over HTTP), the aggregation and correlation, and the dispatcher's tick.
What the product would send to the broker is appended to a local FIFO instead
(``worker.dispatch.enqueue_run`` is replaced), and the loop takes tasks from it in order.

**90-day backfill over days** (``backfill_days``). A Pro account whose participant reports need
more Heavy calls than two days allow: the daily cap is scaled down (``DAILY_HEAVY``, at the
default share) instead of making a million calls. Days are simulated: the dispatcher's tick is
called with ``now`` = the next simulated midnight (+5 min), and the limiter's count of the day
(kept on Redis's own clock, which does not move) is cleared at each simulated midnight; the
planner's reservations are made on the simulated day. Reported: the day the backfill completes,
the chunks left deferred then, and, on day 1, the time until the source's insights are ready
over their floor (sign-in pages / the allowed Heavy rate).

**Time to first insight** (``first_insight``). A 10,000-user Pro account, 90 days of sign-ins
(and the other streams, whose reports are held back until the sign-ins are in, as the product
does); from the first connection test's runs (aggregation and backfill plan) to
``insights_ready_at``, over the floor (sign-in pages / the allowed Heavy rate). Sign-ins per
user are scaled down (0.1 a day) so the floor is tens of seconds, not an hour.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from bench.harness import BenchEnv, FakeZoomProcess, Figure, create_sources

PRO_HEAVY = 10
PAGE_SIZE = 300
# Heavy calls a day at share 1.0 in the backfill figure (x 0.8 = 400 a day).
DAILY_HEAVY = 500
# Tasks run at once, as by a worker's pool (the product's default tenant limit is 4).
WORKERS = 4


@contextmanager
def local_broker() -> Iterator[collections.deque[uuid.UUID]]:
    """What the product sends, in order, instead of Celery."""
    from worker import dispatch

    sent: collections.deque[uuid.UUID] = collections.deque()
    original = dispatch.enqueue_run

    def enqueue_run(run: Any, *, countdown: float | None = None) -> str:  # noqa: ARG001 - the replaced function's signature
        sent.append(run.id)
        return str(run.id)

    dispatch.enqueue_run = enqueue_run
    try:
        yield sent
    finally:
        dispatch.enqueue_run = original


def work(sent: collections.deque[uuid.UUID], now: dt.datetime | None = None,
         workers: int = WORKERS) -> None:
    """Run the sent tasks, ``workers`` at a time, until none is left or running."""
    busy = [0]
    lock = threading.Lock()

    def loop() -> None:
        while True:
            with lock:
                if not sent and not busy[0]:
                    return
                run_id = sent.popleft() if sent else None
                busy[0] += run_id is not None
            if run_id is None:
                time.sleep(0.01)
                continue
            try:
                task(run_id, sent, now)
            finally:
                with lock:
                    busy[0] -= 1

    threads = [threading.Thread(target=loop, name=f"bench-worker-{i}") for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def task(run_id: uuid.UUID, sent: collections.deque[uuid.UUID], now: dt.datetime | None) -> None:
    """What the Celery task of the run would do."""
    from worker.activity.planner import plan_activity
    from worker.activity.service import run_chunk
    from worker.aggregation.service import run_aggregation
    from worker.correlation.service import run_correlation
    from worker.db import session_scope
    from worker.models import RunKind, SyncRun
    from worker.runs.lifecycle import AlreadyRunning

    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        kind, is_plan = (run.kind, run.parent_id is None) if run else (None, False)
    try:
        if kind == RunKind.ACTIVITY and is_plan:
            plan_activity(run_id, now=now)
        elif kind == RunKind.ACTIVITY:
            run_chunk(run_id, now=now)
        elif kind == RunKind.AGGREGATION:
            run_aggregation(run_id)
        elif kind == RunKind.CORRELATION:
            run_correlation(run_id)
    except AlreadyRunning:
        time.sleep(0.05)
        sent.append(run_id)
    except Exception:  # recorded on the run (deferred, failed): the states say
        pass


def first_runs(source_id: uuid.UUID) -> None:
    """What a first good connection test starts: the aggregation and the activity backfill."""
    from worker.db import session_scope
    from worker.models import RunKind, RunTrigger, Source
    from worker.runs import lifecycle as runs
    from worker.runs.followups import send_after_commit

    with session_scope() as session:
        source = session.get_one(Source, source_id)
        for kind in (RunKind.AGGREGATION, RunKind.ACTIVITY):
            run = runs.new_run(source, kind, RunTrigger.AFTER_TEST)
            session.add(run)
            send_after_commit(session, run)


def signin_floor(data: Any, days: int) -> tuple[int, float]:
    """Sign-in pages of the backfill's month windows and their floor at Pro Heavy x share."""
    from worker.settings import get_settings
    from worker.zoom.pagination import month_windows

    today = dt.datetime.now(dt.UTC).date()
    windows = month_windows(today - dt.timedelta(days=days), today)
    pages = sum(max(1, math.ceil(data.count_events(s, e) / PAGE_SIZE)) for s, e in windows)
    return pages, pages / (PRO_HEAVY * get_settings().rate_limit_share)


def schedule_daily_sync(env: BenchEnv, source_id: uuid.UUID) -> None:
    """Due now: each simulated day's tick also starts the daily sync, as beat would."""
    from sqlalchemy import update
    from sqlmodel import col

    from worker.models import Source

    with env.engine.begin() as conn:
        conn.execute(update(Source).where(col(Source.id) == source_id).values(
            next_activity_at=dt.datetime.now(dt.UTC)))


def ready_seconds(source_id: uuid.UUID, started: float) -> float | None:
    from worker.db import session_scope
    from worker.models import Source

    with session_scope() as session:
        ready = session.get_one(Source, source_id).insights_ready_at
    return None if ready is None else ready.timestamp() - started


def signin_timing(source_id: uuid.UUID, started: float) -> dict[str, float]:
    """Where the time to the first insight went: until the first sign-in chunk started, and
    inside the sign-in chunks (paging and writing), in seconds."""
    from sqlmodel import col, select

    from worker.db import session_scope
    from worker.models import Stream, SyncRun

    with session_scope() as session:
        rows = session.exec(select(SyncRun).where(
            SyncRun.source_id == source_id, SyncRun.stream == Stream.SIGNINS,
            col(SyncRun.parent_id).is_not(None), col(SyncRun.started_at).is_not(None))).all()
        spans = [(r.started_at.timestamp(), r.finished_at.timestamp(), r.pages)
                 for r in rows if r.started_at and r.finished_at]
    if not spans:
        return {}
    inside = sum(b - a for a, b, _ in spans)
    return {"first_signin_chunk_after": round(min(a for a, _, _ in spans) - started, 2),
            "inside_signin_chunks": round(inside, 2),
            "signin_pages_per_second_inside": round(sum(p for *_, p in spans) / inside, 2)}


class FirstRuns(NamedTuple):
    ready: float | None  # seconds to ``insights_ready_at``; None: not ready
    timing: dict[str, float]  # ``signin_timing``
    wall: float  # seconds until every task sent had run


def until_first_insight(fake: FakeZoomProcess, source_id: uuid.UUID,
                        sent: collections.deque[uuid.UUID]) -> FirstRuns:
    """The first connection test's runs (aggregation and backfill plan) and every task they
    send, run to the end, timed from the moment they are sent (the fake's counts from then).

    Timed as on a running worker: the tasks' modules are imported first (a worker imports its
    tasks when it starts; the first `task` would otherwise import them inside the timed window,
    0.3-0.4 s here, the first time in the process only), and the database pool holds a
    connection for each of the ``WORKERS`` tasks (``point_at`` has just made a new engine)."""
    import worker.activity.planner
    import worker.activity.service
    import worker.aggregation.service
    import worker.correlation.service  # noqa: F401 - imported as by a worker's start
    from worker.db import get_engine

    connections = [get_engine().connect() for _ in range(WORKERS)]
    for connection in connections:
        connection.close()
    fake.reset_stats()
    started = time.time()
    first_runs(source_id)
    work(sent)
    ready = ready_seconds(source_id, started)
    timing = signin_timing(source_id, started)
    return FirstRuns(ready, timing, time.time() - started)


def chunk_states(source_id: uuid.UUID) -> collections.Counter[str]:
    from sqlmodel import col, select

    from worker.db import session_scope
    from worker.models import SyncRun

    with session_scope() as session:
        rows = session.exec(select(SyncRun.status).where(
            SyncRun.source_id == source_id, col(SyncRun.parent_id).is_not(None))).all()
    return collections.Counter(str(s) for s in rows)


def backfill_days(env: BenchEnv, fig: Figure) -> None:
    from fakezoom.config import AccountSpec, AppSpec, FakeZoomConfig
    from fakezoom.core import FakeZoom
    from worker.activity.planner import heavy_budget
    from worker.db import session_scope
    from worker.models import Source
    from worker.ratelimit.plans import PLAN_LIMITS, CategoryLimit
    from worker.runs.lifecycle import next_utc_midnight
    from worker.scheduling.service import dispatch_due
    from worker.zoom.endpoints import Category

    today = dt.datetime.now(dt.UTC).date()
    users = 100 if env.quick else 200
    # ~1,000 Heavy calls in all whatever the size: more than two days' 400, less than three.
    spec = AccountSpec(users=users, groups=2, custom_roles=0, days=95,
                       events_per_user_per_day=1.0, meetings_per_host_per_day=13 / users,
                       max_participants=4, operation_logs_per_day=1,
                       apps=[AppSpec(kind="s2s")])
    # The fake's own daily cap out of the way: the budget measured is ours.
    config = FakeZoomConfig(seed=14, plan="pro", accounts=[spec], anchor_date=today.isoformat(),
                            daily_scale=1000)
    data = FakeZoom(config).account(0).data
    pages, floor = signin_floor(data, 90)
    saved = {c: PLAN_LIMITS["pro"][c] for c in (Category.HEAVY, Category.RESOURCE_INTENSIVE)}
    for c, limit in saved.items():
        PLAN_LIMITS["pro"][c] = CategoryLimit(limit.per_second, DAILY_HEAVY, limit.daily_group)
    try:
        with FakeZoomProcess(config) as fake, local_broker() as sent:
            env.point_at(fake)
            (sid,) = create_sources(env.engine, fake.accounts)
            schedule_daily_sync(env, sid)
            with session_scope() as session:
                budget = heavy_budget(env.redis, session.get_one(Source, sid))
            ready, timing, _ = until_first_insight(fake, sid, sent)
            day_states = [chunk_states(sid)]
            heavy_by_day = [int(fake.stats().get("requests_total", 0))]
            midnight = next_utc_midnight(dt.datetime.now(dt.UTC))
            done_on = 1 if not day_states[0]["deferred"] and not day_states[0]["queued"] else 0
            for day in range(2, 8):
                if done_on:
                    break
                # Simulated midnight: the limiter's count of the (real) day starts again; the
                # planner and dispatcher see the next day.
                for key in env.redis.scan_iter(f"{budget.key(today)}*"):
                    env.redis.delete(key)
                now = midnight + dt.timedelta(days=day - 2, minutes=6)
                dispatch_due(now, redis_client=env.redis)
                work(sent, now)
                states = chunk_states(sid)
                day_states.append(states)
                heavy_by_day.append(int(fake.stats().get("requests_total", 0)))
                if not states["deferred"] and not states["queued"]:
                    done_on = day
            stats = fake.stats()
    finally:
        PLAN_LIMITS["pro"].update(saved)
    cap = math.floor(DAILY_HEAVY * budget.share)
    requests = [b - a for a, b in zip([0, *heavy_by_day], heavy_by_day, strict=False)]
    fig.raw["backfill"] = {"daily_cap": cap, "signin_pages": pages, "floor_seconds": floor,
                           "ready_seconds": ready, "signin_timing": timing,
                           "requests_by_day": requests,
                           "chunks_by_day": [dict(s) for s in day_states],
                           "429s": int(stats.get("rate_limited_total", 0))}
    fig.add("90-day backfill: completed on day", done_on or None, "3",
            f"Heavy cap {cap}/day; requests per day {requests}", unit="n")
    fig.add("... chunks left deferred then", day_states[-1]["deferred"], "0",
            f"chunks by status at the end: {dict(day_states[-1])}", unit="n")
    fig.add("... day 1: insights ready / floor", None if ready is None else ready / floor, "<= 1.2",
            f"{pages} sign-in pages / {PRO_HEAVY * budget.share:g} per s")


def first_insight(env: BenchEnv, fig: Figure) -> None:
    from fakezoom.config import AccountSpec, AppSpec, FakeZoomConfig
    from fakezoom.core import FakeZoom
    from worker.settings import get_settings

    today = dt.datetime.now(dt.UTC).date()
    users = 2_000 if env.quick else 10_000
    spec = AccountSpec(users=users, groups=10, custom_roles=2, days=95,
                       events_per_user_per_day=0.1, meetings_per_host_per_day=0.002,
                       max_participants=4, operation_logs_per_day=2,
                       apps=[AppSpec(kind="s2s")])
    config = FakeZoomConfig(seed=15, plan="pro", accounts=[spec], anchor_date=today.isoformat())
    data = FakeZoom(config).account(0).data
    pages, floor = signin_floor(data, get_settings().activity_backfill_days)
    with FakeZoomProcess(config) as fake, local_broker() as sent:
        env.point_at(fake)
        (sid,) = create_sources(env.engine, fake.accounts)
        ready, timing, wall = until_first_insight(fake, sid, sent)
        stats = fake.stats()
    fig.raw["first_insight"] = {"users": users, "signin_pages": pages, "floor_seconds": floor,
                                "ready_seconds": ready, "signin_timing": timing,
                                "whole_backfill_seconds": wall,
                                "requests": int(stats.get("requests_total", 0)),
                                "429s": int(stats.get("rate_limited_total", 0))}
    rate = PRO_HEAVY * get_settings().rate_limit_share
    fig.add(f"{users:,} users: time to first insight / floor",
            None if ready is None else ready / floor, "<= 1.2",
            f"{pages} sign-in pages / {rate:g} per s (Pro Heavy x share)")


def run(env: BenchEnv) -> Figure:
    fig = Figure("backfill", "Daily Heavy budget over simulated days; time to first insight")
    backfill_days(env, fig)
    env.reset_data()
    first_insight(env, fig)
    fig.notes.append(f"{WORKERS} tasks at a time (threads of this process), taken in the order "
                     "the product sends them; days simulated for the planner and dispatcher "
                     "(see the module's docstring)")
    return fig
