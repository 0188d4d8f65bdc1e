"""Per-source schedules, kept in Postgres and turned into runs by `dispatch_due`.

Why a dispatcher task over Postgres rather than celery-redbeat entries: the schedule's truth is
the source row (cron, time zone, status), which the API edits; a copy in Redis would have to be
kept in step and would be lost by a Redis flush. Here beat has one static entry (every ~30 s it
enqueues `scheduling.dispatch_due`); the task locks due source rows (`FOR UPDATE SKIP LOCKED`),
creates their runs, advances `next_*_at` from the cron, commits, and only then enqueues. A second
beat, or two ticks at once, find the rows locked or no longer due: nothing is enqueued twice. A
changed schedule is the API recomputing `next_*_at` (`compute_next`): the next tick sees it.

The same tick resumes deferred activity chunks whose time has come, and sweeps up lost work
(worker/runs/sweep.py): a running run whose lease expired (a killed worker), a queued run or
connection test whose message was not picked up within its grace (a Redis flush or restart, an
enqueue that failed), a chunk whose turn has come but was never sent. Sending again is harmless:
every task is idempotent, a finished run ignores a second delivery, a held one is re-queued.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import or_
from sqlmodel import Session, col, select

from worker.activity.planner import readmission_order, readmit, release_held, runnable_heads
from worker.db import session_scope
from worker.kit import sql
from worker.kit.redis import get_redis
from worker.models import (
    ConnectionTest,
    RunKind,
    RunStatus,
    RunTrigger,
    Source,
    SourceStatus,
    SyncRun,
    utcnow,
)
from worker.models.base import as_utc
from worker.runs import lifecycle as runs
from worker.runs import sweep
from worker.runs.followups import send_after_commit, stamp
from worker.runs.lifecycle import roll_up
from worker.scheduling.cron import default_cron, next_fire

log = logging.getLogger(__name__)

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
    for source in session.exec(sql.skip_locked(session, stmt)).all():
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
    deferred = session.exec(sql.skip_locked(session, stmt)).all()
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
        heads.extend(runnable_heads(siblings))
        roll_up(session, parent_id)
    # Held reports whose sign-ins and directory are in (normally sent by the chunk
    # that ends the sign-in chain; this is for a directory that finished after it).
    released = release_held(session, redis_client, now, limit=BATCH)
    return [*heads, *(r for r in released if r not in heads)]


def dispatch_due(
    now: datetime | None = None,
    *,
    redis_client: redis.Redis | None = None,
    enqueue: bool = True,
) -> list[SyncRun]:
    """One scheduler tick. Returns the runs it enqueued (or would have, with enqueue=False);
    lost connection tests are sent again too (not in the returned list)."""
    now = now or utcnow()
    if redis_client is None:
        redis_client = get_redis()
    with session_scope() as session:
        created = due_runs(session, now)
        resumed = resumable_runs(session, now, redis_client)
        fresh = {r.id for r in (*created, *resumed)}
        lost = [r for r in sweep.lost_runs(session, now) if r.id not in fresh]
        to_send = [*created, *resumed, *lost]
        tests = sweep.lost_tests(session, now)
        rows: list[SyncRun | ConnectionTest] = [*to_send, *tests]
        for row in rows:
            if enqueue:
                send_after_commit(session, row, now)
            else:
                stamp(row, now)
    if enqueue:
        # A real cycle: the inbox reads sources (sources -> scheduling.compute_next -> here).
        from worker.webhooks.inbox import sweep as sweep_webhooks

        sweep_webhooks(now)  # webhook events the API could not send
    if to_send or tests:
        log.info("dispatch_due: %d scheduled, %d resumed, %d runs and %d connection tests "
                 "re-sent", len(created), len(resumed), len(lost), len(tests))
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

