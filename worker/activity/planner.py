"""The activity plan: a sync becomes chunks of (source, stream, window of at most one month).

Each chunk is its own SyncRun (child of the plan run) and its own task, so one tenant's 90-day
backfill is many short tasks that interleave with other tenants' work instead of one long one.
Chunks of one (source, stream) run in window order, as a chain: a chunk enqueues the next when it
commits, so the stream's watermark only ever advances over contiguous, committed windows.

Zoom's daily cap on Heavy requests (every report is Heavy) is part of the plan: each chunk's cost
is estimated, reserved against the account's budget for the UTC day, and what does not fit is
created `deferred` until after midnight UTC, when the dispatcher resumes it.
"""

from __future__ import annotations

import logging
import math
import uuid
from datetime import UTC, date, datetime, time, timedelta

import redis
from sqlalchemy import func
from sqlmodel import Session, col, select

from worker.db import session_scope
from worker.models import (
    ActivityEvent,
    Meeting,
    RunKind,
    RunStatus,
    Source,
    Stream,
    StreamCursor,
    SyncRun,
    ZoomPlan,
    ZoomUser,
    utcnow,
)
from worker.runs import lifecycle as runs
from worker.runs.followups import send_after_commit, stamp
from worker.runs.lifecycle import chain_heads, roll_up
from worker.settings import get_settings
from worker.zoom.pagination import earliest_report_date, month_windows

log = logging.getLogger(__name__)

STREAMS: tuple[Stream, ...] = (
    Stream.SIGNINS,
    Stream.HOST_USAGE,
    Stream.MEETINGS,
    Stream.DAILY_USAGE,
    Stream.OPERATION_LOGS,
)

# Zoom's daily cap on Heavy (+ Resource-intensive) requests per account, by plan (zoom-api.md):
# Free counts Heavy alone (1,000/day); Pro and Business share 30,000 / 60,000 with
# Resource-intensive.
HEAVY_DAILY_CAP = {ZoomPlan.FREE: 1_000, ZoomPlan.PRO: 30_000, ZoomPlan.BUSINESS: 60_000}
PAGE_SIZE = 300

# Reserve `cost` in the day's budget only if it fits (atomic across planners).
_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return -1 end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], 172800)
return used + tonumber(ARGV[1])
"""


def heavy_daily_cap(source: Source) -> int:
    """Our share of the account's daily Heavy budget (other apps of the account use the rest)."""
    share = source.rate_share or get_settings().rate_limit_share
    plan = ZoomPlan(source.plan) if source.plan in {p.value for p in ZoomPlan} else ZoomPlan.PRO
    return max(1, int(HEAVY_DAILY_CAP[plan] * share))


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def estimate_heavy_cost(session: Session, source_id: uuid.UUID, stream: str,
                        start: date, end: date) -> int:
    """Heavy calls a chunk will make: pages of its report(s), and for meetings one call per
    host and per meeting. From what is stored for the source's last 30 days when there is
    history, else from the directory (a first backfill)."""
    days = (end - start).days + 1
    since = utcnow() - timedelta(days=30)
    if stream == Stream.SIGNINS:
        events = session.exec(select(func.count()).select_from(ActivityEvent).where(
            ActivityEvent.source_id == source_id, col(ActivityEvent.time) >= since)).one()
        return max(1, math.ceil(events / 30 * days / PAGE_SIZE))
    if stream == Stream.MEETINGS:
        meetings, hosts = session.exec(
            select(func.count(), func.count(func.distinct(Meeting.host_zoom_id))).where(
                Meeting.source_id == source_id, col(Meeting.start_time) >= since)).one()
        if not meetings:
            licensed = session.exec(select(func.count()).select_from(ZoomUser).where(
                ZoomUser.source_id == source_id, col(ZoomUser.deleted_at).is_(None),
                ZoomUser.type == 2)).one()
            return 1 + licensed
        return 1 + hosts + math.ceil(meetings / 30 * days)
    return 1


def reserve_heavy(client: redis.Redis, source: Source, day: date, cost: int) -> bool:
    account = source.zoom_account_id or str(source.id)
    key = f"ai:heavy-budget:{account}:{day.isoformat()}"
    return int(client.eval(_RESERVE, 1, key, cost, heavy_daily_cap(source))) >= 0


def plan_windows(source: Source, stream: str, cursor: StreamCursor | None, run: SyncRun,
                 now: datetime) -> list[tuple[date, date]]:
    settings = get_settings()
    today = now.astimezone(UTC).date()
    if run.window_start is not None:
        start = run.window_start.astimezone(UTC).date()
        end = (run.window_end or now).astimezone(UTC)
        last = (end - timedelta(microseconds=1)).date() if end.time() == time.min else end.date()
    elif cursor is not None and cursor.watermark is not None:
        watermark = cursor.watermark.astimezone(UTC)
        start = (watermark - timedelta(hours=settings.activity_lookback_hours)).date()
        last = today
    else:
        start = today - timedelta(days=settings.activity_backfill_days)
        last = today
    # Zoom refuses report dates older than six months (code 300).
    start = max(start, earliest_report_date(today))
    last = min(last, today)
    return month_windows(start, last)


def plan_activity(
    run_id: uuid.UUID,
    *,
    now: datetime | None = None,
    redis_client: redis.Redis | None = None,
    enqueue: bool = True,
) -> SyncRun:
    """Split an activity run into chunk runs and enqueue the head chunk of each stream.

    The run may carry `window_start`/`window_end` (an explicit range, e.g. from the API) and
    `details["streams"]` (a subset); otherwise each stream continues from its watermark with
    the look-back, or backfills `activity_backfill_days` the first time.
    """
    now = now or utcnow()
    if redis_client is None:
        from worker.kit.redis import get_redis

        redis_client = get_redis()
    try:
        with session_scope() as session:
            run = session.get(SyncRun, run_id, with_for_update=True)
            if run is None:
                raise LookupError(f"sync run {run_id} does not exist")
            if run.status in runs.TERMINAL or run.parent_id is not None:
                return run
            existing = session.exec(select(SyncRun).where(SyncRun.parent_id == run_id)).all()
            if existing:
                # A redelivered plan: its chunks exist; make sure each chain is moving.
                heads = chain_heads(existing)
            else:
                heads = _create_chunks(session, run, now, redis_client)
            for head in heads:
                if enqueue:
                    send_after_commit(session, head)
                else:
                    stamp(head)
    except BaseException as exc:
        runs.record_failure(run_id, exc)
        raise
    return run


def _create_chunks(session: Session, run: SyncRun, now: datetime,
                   redis_client: redis.Redis) -> list[SyncRun]:
    source = session.get_one(Source, run.source_id)
    runs.begin(session, run)
    streams = [Stream(s) for s in run.details.get("streams", STREAMS)]
    today = now.astimezone(UTC).date()
    resume_at = runs.next_utc_midnight(now) + timedelta(minutes=5)
    chunks: list[SyncRun] = []
    planned_cost = deferred = 0
    # Oldest windows first over all streams: what Zoom drops soonest is fetched first.
    candidates: list[tuple[date, int, str, date]] = []
    for order, name in enumerate(streams):
        cursor = session.get(StreamCursor, (run.source_id, str(name)))
        for start, end in plan_windows(source, name, cursor, run, now):
            candidates.append((start, order, str(name), end))
    out_of_budget: set[str] = set()
    for start, _, stream, end in sorted(candidates):
        cost = estimate_heavy_cost(session, run.source_id, stream, start, end)
        window_end = min(day_start(end + timedelta(days=1)), now)
        chunk = SyncRun(
            tenant_id=run.tenant_id, source_id=run.source_id, parent_id=run.id,
            kind=RunKind.ACTIVITY, stream=stream, trigger=run.trigger,
            window_start=day_start(start), window_end=window_end,
            details={"heavy_cost": cost},
        )
        # Once a stream's chunk is deferred, later windows of it wait too (watermark order).
        if stream in out_of_budget or not reserve_heavy(redis_client, source, today, cost):
            out_of_budget.add(stream)
            chunk.status = RunStatus.DEFERRED
            chunk.checkpoint = {"not_before": resume_at.isoformat(), "reason": "daily_cap"}
            chunk.error_message = (
                f"deferred: Zoom's daily cap on Heavy requests would be exceeded today "
                f"(this chunk needs about {cost}); resumes after 00:00 UTC [{runs.where(source)}]"
            )
            deferred += 1
        else:
            planned_cost += cost
        session.add(chunk)
        chunks.append(chunk)
    session.flush()
    run.details = {**run.details, "chunks": len(chunks), "deferred": deferred,
                   "heavy_cost_today": planned_cost}
    if not chunks:
        runs.finish(run, RunStatus.SUCCEEDED)
    else:
        roll_up(session, run.id)
    log.info("activity plan %s of %s: %d chunks, %d deferred, ~%d Heavy calls today",
             run.id, runs.where(source), len(chunks), deferred, planned_cost)
    return chain_heads(chunks)
