"""Per-source schedules, kept in Postgres and turned into runs by `dispatch_due`.

Why a dispatcher task over Postgres rather than celery-redbeat entries: the schedule's truth is
the source row (cron, time zone, status), which the API edits; a copy in Redis would have to be
kept in step and would be lost by a Redis flush. Here beat has one static entry (every ~30 s it
enqueues `scheduling.dispatch_due`); the task locks due source rows (`FOR UPDATE SKIP LOCKED`),
creates their runs, advances `next_*_at` from the cron, commits, and only then enqueues. A second
beat, or two ticks at once, find the rows locked or no longer due: nothing is enqueued twice. A
changed schedule is the API recomputing `next_*_at` (`compute_next`): the next tick sees it.

The same tick resumes deferred activity chunks whose time has come, and re-enqueues runs whose
message was lost (queued long ago, never started: e.g. Redis flushed), which is harmless because
every task is idempotent and a finished run ignores a second delivery.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import or_
from sqlmodel import Session, col, select

from worker.activity.planner import chain_heads, readmission_order, readmit, roll_up
from worker.db import is_postgres, session_scope
from worker.kit import runs
from worker.models import (
    RunKind,
    RunStatus,
    RunTrigger,
    Source,
    SourceStatus,
    SyncRun,
    utcnow,
)
from worker.models.base import as_utc
from worker.scheduling.cron import default_cron, next_fire

log = logging.getLogger(__name__)

# A queued run whose message was sent this long ago and that never started was lost.
LOST_AFTER = timedelta(minutes=30)
BATCH = 200
# A tick keeps taking batches for at most this long: well inside beat's 30 s interval.
TICK_BUDGET_SECONDS = 20.0


def schedulable(source: Source) -> bool:
    """Only sources whose last connection test passed are scheduled."""
    return source.status == SourceStatus.ACTIVE


def aggregation_cron(source: Source) -> str:
    return source.aggregation_cron or default_cron(source.id, "aggregation")


def activity_cron(source: Source) -> str:
    return source.activity_cron or default_cron(source.id, "activity")


def compute_next(source: Source, now: datetime | None = None) -> None:
    """Set `next_aggregation_at` / `next_activity_at` from the crons, or None when the source
    is not scheduled (disabled, failing, re-authorise, or the kind switched off). The API calls
    this after changing a schedule, a status or the enabled flags."""
    now = now or utcnow()
    active = schedulable(source)
    source.next_aggregation_at = (
        next_fire(aggregation_cron(source), source.timezone, now)
        if active and source.aggregation_enabled else None
    )
    source.next_activity_at = (
        next_fire(activity_cron(source), source.timezone, now)
        if active and source.activity_enabled else None
    )


def _lock(stmt: Any, session: Session) -> Any:
    # SQLite has no row locks (and one writer at a time): the plain select is enough there.
    return stmt.with_for_update(skip_locked=True) if is_postgres(session) else stmt


def due_runs(session: Session, now: datetime) -> list[SyncRun]:
    """Create the runs of every due source and advance its schedule (caller commits)."""
    stmt = (
        select(Source)
        .where(
            Source.status == SourceStatus.ACTIVE,
            or_(
                (col(Source.next_aggregation_at) <= now) & col(Source.aggregation_enabled),
                (col(Source.next_activity_at) <= now) & col(Source.activity_enabled),
            ),
        )
        .order_by(col(Source.next_activity_at))
        .limit(BATCH)
    )
    created: list[SyncRun] = []
    for source in session.exec(_lock(stmt, session)).all():
        next_agg, next_act = as_utc(source.next_aggregation_at), as_utc(source.next_activity_at)
        agg_due = source.aggregation_enabled and next_agg is not None and next_agg <= now
        act_due = source.activity_enabled and next_act is not None and next_act <= now
        if agg_due:
            created.append(runs.new_run(source, RunKind.AGGREGATION, RunTrigger.SCHEDULE))
        if act_due:
            created.append(runs.new_run(source, RunKind.ACTIVITY, RunTrigger.SCHEDULE))
        # From `now`, not from the missed slot: a source down for three days fires once.
        if agg_due:
            source.next_aggregation_at = next_fire(aggregation_cron(source), source.timezone, now)
        if act_due:
            source.next_activity_at = next_fire(activity_cron(source), source.timezone, now)
    for run in created:
        session.add(run)
    return created


def resumable_runs(session: Session, now: datetime, redis_client: redis.Redis) -> list[SyncRun]:
    """Deferred runs whose time has come: aggregations go again; activity chunks are
    re-admitted against today's Heavy budget, by value (sign-ins first, participant reports
    last), until it is spent, and their chains restarted. A chunk that does not fit today keeps
    the later windows of its chain waiting (they could not run before it) and leaves the budget
    to the next chunks; tomorrow's tick tries it first again. (A deferred plan run is only the
    roll-up of its chunks: it has nothing to resume itself.)"""
    stmt = select(SyncRun).where(SyncRun.status == RunStatus.DEFERRED).limit(BATCH * 5)
    deferred = session.exec(_lock(stmt, session)).all()
    ready: list[SyncRun] = []
    waiting: set[tuple[object, str]] = set()  # chains whose earlier chunk did not fit today
    for run in sorted(deferred, key=lambda c: (c.parent_id is not None, readmission_order(c))):
        if run.kind == RunKind.ACTIVITY and run.parent_id is None:
            continue
        chain = (run.parent_id, str(run.stream))
        not_before = run.checkpoint.get("not_before")
        if not_before and datetime.fromisoformat(not_before) > now:
            waiting.add(chain)
            continue
        source = session.get(Source, run.source_id)
        if source is None or not schedulable(source):
            continue
        if run.parent_id is not None and (
            chain in waiting or not readmit(session, redis_client, source, run, now)
        ):
            waiting.add(chain)
            continue
        run.status = RunStatus.QUEUED
        run.error_message = None
        ready.append(run)
    heads: list[SyncRun] = [r for r in ready if r.parent_id is None]
    for parent_id in {c.parent_id for c in ready if c.parent_id is not None}:
        siblings = session.exec(select(SyncRun).where(SyncRun.parent_id == parent_id)).all()
        heads.extend(chain_heads(siblings))
        roll_up(session, parent_id)
    return heads


def lost_runs(session: Session, now: datetime) -> list[SyncRun]:
    stmt = select(SyncRun).where(SyncRun.status == RunStatus.QUEUED,
                                 col(SyncRun.created_at) < now - LOST_AFTER).limit(BATCH)
    lost = []
    for run in session.exec(_lock(stmt, session)).all():
        sent = run.details.get("enqueued_at")
        if run.parent_id is not None and not sent:
            continue  # a chunk waiting for its turn in the chain, not a lost message
        if sent and datetime.fromisoformat(sent) > now - LOST_AFTER:
            continue
        lost.append(run)
    return lost


def dispatch_due(
    now: datetime | None = None,
    *,
    redis_client: redis.Redis | None = None,
    enqueue: bool = True,
) -> list[SyncRun]:
    """One scheduler tick. Returns the runs it enqueued (or would have, with enqueue=False)."""
    now = now or utcnow()
    if redis_client is None:
        from worker.kit.redis import get_redis

        redis_client = get_redis()
    with session_scope() as session:
        created = due_runs(session, now)
        resumed = resumable_runs(session, now, redis_client)
        lost = lost_runs(session, now)
        to_send = [*created, *resumed, *lost]
        stamp = utcnow().isoformat()
        for run in to_send:
            run.details = {**run.details, "enqueued_at": stamp}
    if enqueue:
        from worker.dispatch import enqueue_run

        for run in to_send:
            try:
                enqueue_run(run)
            except Exception:
                # The run row exists and is queued: the lost-run sweep sends it again later.
                log.exception("could not enqueue run %s [%s]", run.id, runs.where(None,
                                                                                  run.tenant_id))
    if enqueue:
        from worker.webhooks.inbox import sweep  # webhook events the API could not send

        sweep(now)
    if to_send:
        log.info("dispatch_due: %d scheduled, %d resumed, %d re-sent", len(created),
                 len(resumed), len(lost))
    return to_send


def dispatch_backlog(budget_seconds: float = TICK_BUDGET_SECONDS, **kwargs: Any) -> int:
    """Beat's tick: one `dispatch_due` batch, and more while batches come back full and the
    budget (shorter than beat's interval) lasts, so 10,000 sources due at once are sent within
    a tick or two instead of one batch of BATCH every 30 s. A full batch only means "maybe
    more": the worst case is one extra, empty query."""
    deadline = time.monotonic() + budget_seconds
    sent = 0
    while True:
        batch = dispatch_due(**kwargs)
        sent += len(batch)
        if len(batch) < BATCH or time.monotonic() >= deadline:
            return sent

