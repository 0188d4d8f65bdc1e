"""The activity plan: a sync becomes chunks of (source, stream, window of at most one month).

Each chunk is its own SyncRun (child of the plan run) and its own task, so one tenant's 90-day
backfill is many short tasks that interleave with other tenants' work instead of one long one.
Chunks of one (source, stream) run in window order, as a chain: a chunk enqueues the next when it
commits, so the stream's watermark only ever advances over contiguous, committed windows.

Zoom's daily cap on Heavy requests (every report is Heavy) is part of the plan: each chunk's cost
is estimated from what the account has, a window costing more than a day is split by days, each
chunk is reserved against the account's budget for the UTC day (``worker.ratelimit.budget``, the
counter the limiter counts requests in), and what does not fit is created `deferred`; the
dispatcher re-admits deferred chunks every day, by value, until the day's budget is spent. A
chunk gives back the part of its reservation it did not use when it ends. A day of participant
reports that alone costs more than a day is split by hosts.

A scheduled sync (no window of its own) plans no stream whose chain from an earlier plan is still
outstanding (deferred, queued or running): those chunks are re-admitted, and a second chain over
the days the watermark has not passed yet would pay for them twice.

First insight first: the other streams' chains (the participant reports above all) are *held*
(queued, not sent) until the plan's sign-in chain and the directory's aggregation are done, so
they do not share the account's Heavy rate with the sign-in pages the insights need. The chunk
that ends the sign-in chain sends them, or the dispatcher's next tick (``release_held``).
"""

from __future__ import annotations

import logging
import math
import uuid
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import redis
from sqlalchemy import exists, func, not_, or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from worker.db import session_scope
from worker.kit.redis import get_redis
from worker.models import (
    ActivityEvent,
    HostUsage,
    Meeting,
    RunKind,
    RunStatus,
    Source,
    Stream,
    StreamCursor,
    SyncRun,
    utcnow,
)
from worker.models.base import as_utc
from worker.ratelimit.budget import DailyBudget, account_key, charging, utc_day
from worker.runs import lifecycle as runs
from worker.runs.followups import send_after_commit
from worker.runs.hold import Admit, Hold, hold
from worker.runs.lifecycle import chain_heads, roll_up
from worker.settings import get_settings
from worker.webhooks import lookback as webhook_lookback
from worker.zoom.reports import clamp_windows

log = logging.getLogger(__name__)

STREAMS: tuple[Stream, ...] = (
    Stream.SIGNINS,
    Stream.HOST_USAGE,
    Stream.MEETINGS,
    Stream.DAILY_USAGE,
    Stream.OPERATION_LOGS,
)

# First insight first: the sign-in history (days active, last sign-in) is what the insights
# need; host usage is cheap and tells the meetings chunks what they will cost; the participant
# reports (one Heavy call per meeting) come last. The daily Heavy budget is admitted in this
# order, at plan time and when deferred chunks are re-admitted.
VALUE_ORDER: dict[str, int] = {
    Stream.SIGNINS: 0,
    Stream.HOST_USAGE: 1,
    Stream.DAILY_USAGE: 2,
    Stream.OPERATION_LOGS: 3,
    Stream.MEETINGS: 4,
}

# Streams whose report covers a calendar month from its first day (worker.activity.service).
MONTHLY_STREAMS = frozenset({Stream.HOST_USAGE, Stream.DAILY_USAGE})
PAGE_SIZE = 300


def heavy_budget(redis_client: redis.Redis, source: Source) -> DailyBudget:
    """The account's daily Heavy budget (``worker.ratelimit.budget``), at our share of the
    plan's cap: the same counter and key the limiter counts requests under."""
    share = source.rate_share or get_settings().rate_limit_share
    return DailyBudget(redis_client, account_key(source.zoom_account_id, source.id),
                       str(source.plan), share)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _host_usage_estimate(session: Session, source_id: uuid.UUID, start: date,
                         end: date) -> tuple[int, int] | None:
    """(hosts, meetings) of the window from the stored /report/users rows of its months (each
    row is one user and month; meetings scale with the part of the month in the window)."""
    rows = session.exec(
        select(col(HostUsage.period_start), col(HostUsage.period_end),
               func.count(func.distinct(HostUsage.user_zoom_id)), func.sum(HostUsage.meetings))
        .where(HostUsage.source_id == source_id, col(HostUsage.period_start) <= end,
               col(HostUsage.period_end) >= start, col(HostUsage.meetings) > 0)
        .group_by(col(HostUsage.period_start), col(HostUsage.period_end))).all()
    if not rows:
        return None
    hosts = 0
    meetings = 0.0
    for p_start, p_end, n_hosts, n_meetings in rows:
        covered = (min(end, p_end) - max(start, p_start)).days + 1
        meetings += (n_meetings or 0) * max(0, covered) / ((p_end - p_start).days + 1)
        hosts = max(hosts, int(n_hosts))
    return hosts, math.ceil(meetings)


def _hosts_and_meetings(session: Session, source_id: uuid.UUID, start: date, end: date,
                        since: datetime) -> tuple[int, int] | None:
    """(hosts, meetings) of the window: from its /report/users rows, else the meetings stored
    since `since` scaled to the window; None when neither is known."""
    known = _host_usage_estimate(session, source_id, start, end)
    if known is not None:
        return known
    meetings, hosts = session.exec(
        select(func.count(), func.count(func.distinct(Meeting.host_zoom_id))).where(
            Meeting.source_id == source_id, col(Meeting.start_time) >= since)).one()
    if not meetings:
        return None
    return int(hosts), math.ceil(meetings / 30 * ((end - start).days + 1))


def estimate_heavy_cost(session: Session, source_id: uuid.UUID, stream: str,
                        start: date, end: date, checkpoint: dict[str, Any] | None = None,
                        now: datetime | None = None) -> int:
    """Heavy calls a chunk will make, from what the account actually has: pages of its report,
    and for meetings one call per host with meetings and one per meeting. Hosts and meetings
    come from the window's stored /report/users rows, else the meetings stored for the last 30
    days; with neither (a first backfill) only the host list is known to be needed, so the
    estimate is that one call and the rest is drawn while the day has room (the directory's
    licensed users say nothing about who hosts). A meetings chunk resuming from its checkpoint
    only counts the hosts it has left."""
    days = (end - start).days + 1
    since = (now or utcnow()) - timedelta(days=30)
    if stream == Stream.SIGNINS:
        events = session.exec(select(func.count()).select_from(ActivityEvent).where(
            ActivityEvent.source_id == source_id, col(ActivityEvent.time) >= since)).one()
        return max(1, math.ceil(events / 30 * days / PAGE_SIZE))
    if stream != Stream.MEETINGS:
        return 1
    known = _hosts_and_meetings(session, source_id, start, end, since)
    if known is None:
        return 1
    hosts, meetings = known
    per_host = 1 + meetings / max(1, hosts)
    done = len((checkpoint or {}).get("hosts_done", []))
    part = host_part(checkpoint)
    mine = hosts / part[1] if part else hosts
    left = max(0.0, mine - done)
    return max(1, math.ceil(hosts / PAGE_SIZE)) + math.ceil(left * per_host)


# -- split by hosts: a day of participant reports larger than a day's budget ------------------


def host_part(checkpoint: dict[str, Any] | None) -> tuple[int, int] | None:
    """(i, n): the chunk fetches the i-th of n parts of the window's hosts (None: all)."""
    part = (checkpoint or {}).get("host_part")
    return (int(part[0]), int(part[1])) if part else None


def hosts_of_part(hosts: Iterable[str], checkpoint: dict[str, Any] | None) -> list[str]:
    """The hosts of the chunk's part, by a hash of the host id: stable whatever the order or the
    hosts Zoom lists on the day each part runs, so every host falls in exactly one part."""
    part = host_part(checkpoint)
    if part is None:
        return list(hosts)
    i, n = part
    return [h for h in hosts if zlib.crc32(h.encode()) % n == i]


def _host_parts(session: Session, source_id: uuid.UUID, day: date, cost: int, cap: int,
                now: datetime) -> list[tuple[date, date, int, tuple[int, int] | None]]:
    """One day of meetings costing more than a day, as parts of its hosts that fit a day each
    (each part lists the hosts again: that page is paid by every part)."""
    hosts, _ = _hosts_and_meetings(session, source_id, day, day,
                                   now - timedelta(days=30)) or (0, 0)
    listing = max(1, math.ceil(hosts / PAGE_SIZE))
    n = math.ceil((cost - listing) / max(1, cap - listing))
    return [(day, day, estimate_heavy_cost(session, source_id, Stream.MEETINGS, day, day,
                                           {"host_part": [i, n]}, now=now), (i, n))
            for i in range(n)]


def reserve_heavy(redis_client: redis.Redis, source: Source, run: SyncRun, day: date,
                  cost: int) -> bool:
    """Reserve the chunk's estimate in the day's budget if it fits (a chunk bigger than a day
    takes one day's cap and resumes from its checkpoint); the reservation is the chunk's own,
    and the chunk gives back what it did not use when it ends (``heavy_reservation``)."""
    held = heavy_budget(redis_client, source).reserve(str(run.id), cost, day)
    if held is None:
        return False
    run.details = {**run.details, "heavy_cost": cost,
                   "heavy_reserved": {"day": day.isoformat(), "calls": held}}
    return True


@contextmanager
def heavy_reservation(run_id: uuid.UUID, redis_client: redis.Redis) -> Iterator[None]:
    """Run a chunk on its reservation: its Heavy requests draw from it, and when the chunk
    ends (done, deferred or failed) what is left goes back to the day's budget."""
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        source = session.get(Source, run.source_id) if run is not None else None
        held = (run.details.get("heavy_reserved") if run is not None else None) or {}
        budget = heavy_budget(redis_client, source) if source is not None else None
    with charging(str(run_id)):
        try:
            yield
        finally:
            if budget is not None and held.get("day"):
                freed = budget.release(str(run_id), date.fromisoformat(held["day"]))
                if freed:
                    log.info("chunk %s gave back %d of %d reserved Heavy calls", run_id, freed,
                             held.get("calls", 0))


Part = tuple[date, date, int, tuple[int, int] | None]


def _fitting_windows(session: Session, source_id: uuid.UUID, stream: str, start: date,
                     end: date, cap: int, now: datetime) -> list[Part]:
    """The window, halved by days until each part's estimate fits in one day's budget; a day of
    meetings that still does not fit is split by hosts (any other stream's day takes a whole
    day and continues from its checkpoint)."""
    cost = estimate_heavy_cost(session, source_id, stream, start, end, now=now)
    if cost <= cap:
        return [(start, end, cost, None)]
    if start >= end:
        if stream == Stream.MEETINGS:
            return _host_parts(session, source_id, start, cost, cap, now)
        return [(start, end, cost, None)]
    middle = start + (end - start) // 2
    return (_fitting_windows(session, source_id, stream, start, middle, cap, now)
            + _fitting_windows(session, source_id, stream, middle + timedelta(days=1), end,
                               cap, now))


def readmission_order(run: SyncRun) -> tuple[int, datetime, datetime]:
    """Deferred chunks are re-admitted by value (``VALUE_ORDER``), then window (a chain runs
    in window order), then age."""
    floor = datetime.min.replace(tzinfo=UTC)
    return (VALUE_ORDER.get(str(run.stream), len(VALUE_ORDER)),
            as_utc(run.window_start) or floor, as_utc(run.created_at) or floor)


def readmit(session: Session, redis_client: redis.Redis, source: Source, run: SyncRun,
            now: datetime) -> bool:
    """Reserve today's budget for a deferred chunk, re-estimated from what is stored now (host
    usage fetched since, the hosts its checkpoint has done)."""
    window_start, window_end = as_utc(run.window_start), as_utc(run.window_end)
    assert window_start is not None
    assert window_end is not None
    first = window_start.date()
    last = (window_end - timedelta(microseconds=1)).date()
    cost = estimate_heavy_cost(session, run.source_id, str(run.stream), first, last,
                               run.checkpoint, now=now)
    return reserve_heavy(redis_client, source, run, utc_day(now), cost)


def plan_windows(stream: str, cursor: StreamCursor | None, run: SyncRun,
                 now: datetime, lookback_hours: int | None = None) -> list[tuple[date, date]]:
    settings = get_settings()
    today = now.astimezone(UTC).date()
    if run.window_start is not None:
        start = run.window_start.astimezone(UTC).date()
        end = (run.window_end or now).astimezone(UTC)
        last = (end - timedelta(microseconds=1)).date() if end.time() == time.min else end.date()
    elif cursor is not None and cursor.watermark is not None:
        watermark = cursor.watermark.astimezone(UTC)
        hours = settings.activity_lookback_hours if lookback_hours is None else lookback_hours
        start = (watermark - timedelta(hours=hours)).date()
        last = today
    else:
        start = today - timedelta(days=settings.activity_backfill_days)
        last = today
    # Zoom refuses report dates older than six months (code 300); the per-month reports (host
    # usage from the 1st, daily usage by year and month) only for months wholly inside them.
    return clamp_windows(start, last, today, whole_months=stream in MONTHLY_STREAMS)


# A chunk's id sent to the plan task is not a plan: left alone.
PLAN = Hold(what="activity plan", accepts=lambda run: run.parent_id is None)


def plan_activity(
    run_id: uuid.UUID,
    *,
    now: datetime | None = None,
    redis_client: redis.Redis | None = None,
    enqueue: bool = True,
    admit: Admit | None = None,
) -> SyncRun:
    """Split an activity run into chunk runs and enqueue the head chunk of each stream.

    The run may carry `window_start`/`window_end` (an explicit range, e.g. from the API) and
    `details["streams"]` (a subset); otherwise each stream continues from its watermark with
    the look-back, or backfills `activity_backfill_days` the first time.
    """
    budget_redis = redis_client or get_redis()
    return hold(run_id, PLAN, lambda session, run, _check: plan(session, run, budget_redis, now),
                redis_client=redis_client, enqueue=enqueue, now=now, admit=admit)


# The streams a plan has still to create chunks for, once its sign-in chain is committed and
# sent (``plan``): a redelivered plan that finds it creates them.
REST = "streams_to_plan"


def plan(session: Session, run: SyncRun, redis_client: redis.Redis,
         now: datetime | None = None) -> None:
    """Create the plan's chunks (or, for a redelivered plan, find them again) and queue the
    head chunk of each stream, in the caller's transaction.

    First insight first: the sign-in chain is created, committed and its head sent before the
    other streams' chunks are (their estimates and reservations took 0.3-0.4 s of the time to
    the first insight on the bench machine); the plan row is locked again for the rest, and a
    redelivery that finds the rest not planned (``REST``) plans it."""
    now = now or utcnow()
    existing = session.exec(select(SyncRun).where(SyncRun.parent_id == run.id)).all()
    if existing and REST not in run.details:
        # A redelivered plan: its chunks exist; its status is theirs, and each chain must move.
        roll_up(session, run.id)
        for head in runnable_heads(existing):
            send_after_commit(session, head)
        return
    heads = runnable_heads(existing)
    streams = [Stream(s) for s in run.details.get(REST, run.details.get("streams", STREAMS))]
    rest: list[Stream] = [s for s in streams if s != Stream.SIGNINS]
    if not existing and Stream.SIGNINS in streams and rest:
        run.details = {**run.details, REST: [str(s) for s in rest]}
        signins = _create_chunks(session, run, now, redis_client, [Stream.SIGNINS])
        streams = rest
        if signins:
            for head in signins:
                send_after_commit(session, head)
            session.commit()
            session.refresh(run, with_for_update=True)
            if REST not in run.details:
                return  # another delivery planned the rest meanwhile (it held the row)
    heads += _create_chunks(session, run, now, redis_client, streams)
    run.details = {k: v for k, v in run.details.items() if k != REST}
    if not run.details.get("chunks"):
        runs.finish(run, RunStatus.SUCCEEDED)
    else:
        roll_up(session, run.id)
    source = session.get_one(Source, run.source_id)
    busy, held = run.details.get("streams_outstanding"), run.details.get("held")
    log.info("activity plan %s of %s: %d chunks, %d deferred, ~%d Heavy calls today%s%s",
             run.id, runs.where(source), run.details.get("chunks", 0),
             run.details.get("deferred", 0), run.details.get("heavy_cost_today", 0),
             f", {busy} left to their outstanding chains" if busy else "",
             f", {held} after the sign-ins" if held else "")
    for head in heads:
        send_after_commit(session, head)


def _create_chunks(session: Session, run: SyncRun, now: datetime, redis_client: redis.Redis,
                   streams: list[Stream]) -> list[SyncRun]:
    """The chunks of ``streams``, added to the plan's counts; returns the heads to send."""
    source = session.get_one(Source, run.source_id)
    today = now.astimezone(UTC).date()
    chunks: list[SyncRun] = []
    planned_cost = deferred = 0
    budget_cap = heavy_budget(redis_client, source).cap()
    # By value first (VALUE_ORDER), each stream's windows oldest first (its chain's order).
    candidates: list[tuple[int, date, str, date]] = []
    for name in streams:
        cursor = session.get(StreamCursor, (run.source_id, str(name)))
        # Shorter while the source's webhooks are healthy (worker/webhooks/lookback.py).
        hours = webhook_lookback.lookback_hours(session, run.source_id, name, now)
        for start, end in plan_windows(name, cursor, run, now, hours):
            candidates.append((VALUE_ORDER.get(name, len(VALUE_ORDER)), start, str(name), end))
    # A sync from the watermark leaves alone a stream whose earlier chain is still outstanding:
    # its deferred chunks are re-admitted by the dispatcher, and a second chain over the same
    # days (the watermark has not moved yet) would only pay for them twice.
    busy = set() if run.window_start is not None else _busy_streams(session, run)
    candidates = [c for c in candidates if c[2] not in busy]
    out_of_budget: set[str] = set()
    for _, window_first, stream, window_last in sorted(candidates):
        parts = _fitting_windows(session, run.source_id, stream, window_first, window_last,
                                 max(1, budget_cap), now)
        for start, end, cost, part in parts:
            window_start = day_start(start)
            window_end = min(day_start(end + timedelta(days=1)), now)
            checkpoint: dict[str, Any] = {}
            if part is not None:
                # The parts of a day follow each other in the chain a microsecond apart, so the
                # watermark passes the day only when its last part is stored.
                i, n = part
                window_start += timedelta(microseconds=i)
                if i < n - 1:
                    window_end = window_start + timedelta(microseconds=1)
                checkpoint = {"host_part": [i, n]}
            chunk = SyncRun(
                tenant_id=run.tenant_id, source_id=run.source_id, parent_id=run.id,
                kind=RunKind.ACTIVITY, stream=stream, trigger=run.trigger,
                window_start=window_start, window_end=window_end,
                details={"heavy_cost": cost}, checkpoint=checkpoint,
            )
            # Once a stream's chunk is deferred, later windows of it wait too (watermark order).
            if stream in out_of_budget or not reserve_heavy(redis_client, source, chunk, today,
                                                            cost):
                out_of_budget.add(stream)
                defer_to_tomorrow(chunk, source, now)
                deferred += 1
            else:
                planned_cost += cost
            session.add(chunk)
            chunks.append(chunk)
    session.flush()
    held = _hold_for_first_insight(session, run, chunks, now)
    details = run.details
    run.details = {**details, "chunks": details.get("chunks", 0) + len(chunks),
                   "deferred": details.get("deferred", 0) + deferred,
                   "heavy_cost_today": details.get("heavy_cost_today", 0) + planned_cost}
    if busy:
        run.details = {**run.details, "streams_outstanding": sorted(
            busy | set(details.get("streams_outstanding", [])))}
    if held:
        run.details = {**run.details, "held": sorted(
            {str(c.stream) for c in held} | set(details.get("held", [])))}
    return runnable_heads(chunks)


_OUTSTANDING = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.DEFERRED)


def _busy_streams(session: Session, run: SyncRun) -> set[str]:
    """Streams of the source with chunks of another plan still to run."""
    rows = session.exec(select(col(SyncRun.stream)).where(
        SyncRun.source_id == run.source_id, SyncRun.kind == RunKind.ACTIVITY,
        col(SyncRun.parent_id).is_not(None), SyncRun.parent_id != run.id,
        col(SyncRun.status).in_(_OUTSTANDING)).distinct()).all()
    return {str(s) for s in rows if s is not None}


# -- first insight first: the reports wait for the sign-ins and the directory --------------

# Streams held back until the plan's sign-in chain and the directory's aggregation are done:
# every report is Heavy, so they would otherwise share the account's Heavy rate with the
# sign-in pages the first insight needs, and delay it by as much as they take: the participant
# reports (one Heavy call per meeting) most, but host usage, daily usage and the operation logs
# too (a page or so a month each: 12 of the 69 Heavy requests sent while the sign-ins of the
# 2,000-user bench ran, bench/RESULTS.md).
HELD_STREAMS = frozenset(s for s in STREAMS if s != Stream.SIGNINS)
HELD = "held"
# A held chain is sent by the chunk that ends the sign-in chain, or by the dispatcher's tick;
# should both fail, the sweep sends it after this long (it is queued, with this lease).
HOLD_LIMIT = timedelta(hours=6)


def is_held(chunk: SyncRun) -> bool:
    return chunk.status == RunStatus.QUEUED and bool(chunk.details.get(HELD))


def runnable_heads(chunks: Iterable[SyncRun]) -> list[SyncRun]:
    """The chain heads to send (``chain_heads``), less the chains held for the first insight."""
    return [c for c in chain_heads(chunks) if not is_held(c)]


def _first_insight_outstanding(plan_id: Any, source_id: Any) -> Any:
    """SQL: the plan's sign-in chunks, or the aggregation of the directory the source is
    matched against, are still to run. ``plan_id`` and ``source_id`` are values or the columns
    of an outer query (``release_held`` asks it of every held head in one statement)."""
    signin, aggregation, source = aliased(SyncRun), aliased(SyncRun), aliased(Source)
    directory = func.coalesce(col(source.governance_source_id), col(source.id))
    return or_(
        exists().where(col(signin.parent_id) == plan_id, col(signin.stream) == Stream.SIGNINS,
                       col(signin.status).in_(_OUTSTANDING)),
        exists().where(col(source.id) == source_id, col(aggregation.source_id) == directory,
                       col(aggregation.kind) == RunKind.AGGREGATION,
                       col(aggregation.status).in_((RunStatus.QUEUED, RunStatus.RUNNING))),
    )


def _first_insight_pending(session: Session, plan_id: uuid.UUID, source_id: uuid.UUID) -> bool:
    return bool(session.exec(select(_first_insight_outstanding(plan_id, source_id))).one())


def _hold_for_first_insight(session: Session, run: SyncRun, chunks: list[SyncRun],
                            now: datetime) -> list[SyncRun]:
    if not _first_insight_pending(session, run.id, run.source_id):
        return []
    held = []
    for head in chain_heads(chunks):
        if head.stream in HELD_STREAMS:
            head.details = {**head.details, HELD: "first_insight"}
            head.lease_until = now + HOLD_LIMIT  # the sweep's fallback (see HOLD_LIMIT)
            held.append(head)
    return held


def release_held(session: Session, redis_client: redis.Redis, now: datetime,
                 source_id: uuid.UUID | None = None, limit: int = 1000) -> list[SyncRun]:
    """The held chains (of one source, or any) whose sign-ins and directory are now in: returns
    their heads to send (the caller sends them after its commit), oldest first. A head held past
    the day it was reserved on is re-admitted against today's budget, or deferred to tomorrow
    like any chunk that does not fit.

    At most ``limit`` heads a call, all of them releasable: the heads still waiting for their
    sign-ins are left out by the query itself, so however many sources are mid-backfill (four
    held heads a plan), they never fill the batch and starve the ones whose turn has come. What
    is over the limit is released by the next call (the dispatcher's tick, which goes on while
    its batches come back full)."""
    stmt = select(SyncRun).where(
        SyncRun.kind == RunKind.ACTIVITY, SyncRun.status == RunStatus.QUEUED,
        col(SyncRun.stream).in_(HELD_STREAMS), col(SyncRun.parent_id).is_not(None),
        col(SyncRun.details)[HELD].as_string().is_not(None),
        not_(_first_insight_outstanding(col(SyncRun.parent_id), col(SyncRun.source_id))))
    if source_id is not None:
        stmt = stmt.where(SyncRun.source_id == source_id)
    stmt = stmt.order_by(col(SyncRun.created_at), col(SyncRun.id)).limit(limit)
    released = []
    for chunk in session.exec(stmt).all():
        if not is_held(chunk):
            continue
        chunk.details = {k: v for k, v in chunk.details.items() if k != HELD}
        reserved = (chunk.details.get("heavy_reserved") or {}).get("day")
        source = session.get_one(Source, chunk.source_id)
        if reserved != utc_day(now).isoformat() and heavy_budget(redis_client, source).cap() \
                and not readmit(session, redis_client, source, chunk, now):
            defer_to_tomorrow(chunk, source, now)
            continue
        released.append(chunk)
    return released


def defer_to_tomorrow(chunk: SyncRun, source: Source, now: datetime) -> None:
    resume_at = runs.next_utc_midnight(now) + timedelta(minutes=5)
    chunk.status = RunStatus.DEFERRED
    chunk.lease_until = None
    chunk.checkpoint = {**chunk.checkpoint, "not_before": resume_at.isoformat(),
                        "reason": "daily_cap"}
    chunk.error_message = (
        f"deferred: Zoom's daily cap on Heavy requests would be exceeded today (this chunk "
        f"needs about {chunk.details.get('heavy_cost', '?')}); resumes after 00:00 UTC "
        f"[{runs.where(source)}]")
