"""The run boundary: starting a run, holding it, and turning any outcome into the run's record.

Begin (status, lease, attempt), `working` (lease renewal, between-page checks, failure record,
hand-back on stop), finish, failure and its wording, and the roll-up of a plan from its chunks.

One place decides what an error means for a run, so every domain words failures the same way:
permanent Zoom errors (credentials, scope, malformed data) fail at once with Zoom's code and the
admin message; transient ones (5xx, timeouts, Redis or Postgres briefly gone) end `retryable`;
rate limits end `deferred` with the time the run may resume. Messages name the tenant, the
source and the Zoom code, never a secret.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, col, select

from worker.db import session_scope
from worker.kit.locks import LeaseLock, renewing
from worker.kit.redis import get_redis
from worker.models import RunKind, RunStatus, RunTrigger, Source, SourceStatus, SyncRun, utcnow
from worker.runs import stop
from worker.runs.followups import send_after_commit
from worker.runs.lease import RunLease, working_until
from worker.zoom.errors import ZoomAuthError, ZoomError, ZoomRateLimited

log = logging.getLogger(__name__)

# A run in one of these states is finished: delivering its task again does nothing.
TERMINAL = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.RETRYABLE, RunStatus.SKIPPED}
)
# After a per-second 429 storm outlasted the client's retries, wait this long before resuming.
STORM_PAUSE = timedelta(minutes=5)


class RecordedFailure(Exception):
    """A connection test or run failed and its outcome (status, Zoom code, admin message) is
    recorded: raised from the task after that, so Celery and Flower count a failure instead of
    a success whose result string says "failed". Celery logs it as expected (no traceback)."""


class RunMissing(LookupError):
    """The run a message names is gone (deleted with its source)."""


class LeaseLost(RuntimeError):
    """Our lock's lease ran out mid-run (Redis gone, process stalled): stop, retry later."""


class AlreadyRunning(RuntimeError):
    """The same run is held by another delivery (a redelivery while the first is alive, or a
    killed worker's lease not yet expired): the task re-queues itself and tries again."""


@dataclass(frozen=True)
class Outcome:
    status: RunStatus
    code: str | None
    message: str
    not_before: datetime | None = None


def next_utc_midnight(now: datetime) -> datetime:
    return (now.astimezone(UTC) + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )


def classify(exc: BaseException, now: datetime | None = None) -> Outcome:
    """What an exception means for a run."""
    now = now or utcnow()
    if isinstance(exc, ZoomRateLimited):
        if exc.daily:
            resume = next_utc_midnight(now) + timedelta(minutes=5)
        else:
            resume = now + max(STORM_PAUSE, timedelta(seconds=exc.retry_after or 0))
        return Outcome(RunStatus.DEFERRED, str(exc.code or 429), exc.admin_message, resume)
    if isinstance(exc, ZoomError):
        status = RunStatus.RETRYABLE if exc.retryable else RunStatus.FAILED
        code = None if exc.code is None else str(exc.code)
        return Outcome(status, code, exc.admin_message)
    if isinstance(exc, LeaseLost | AlreadyRunning | stop.StopRequested):
        return Outcome(RunStatus.RETRYABLE, None, str(exc))
    if isinstance(exc, redis.RedisError):
        return Outcome(RunStatus.RETRYABLE, None, "Redis was unavailable; the run will retry")
    if isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return Outcome(RunStatus.RETRYABLE, None, "the database was unavailable; will retry")
    return Outcome(RunStatus.FAILED, None, f"internal error ({type(exc).__name__})")


def is_transient(exc: BaseException) -> bool:
    return classify(exc).status == RunStatus.RETRYABLE


def where(source: Source | None, tenant_id: uuid.UUID | None = None) -> str:
    """The context every error message carries: tenant and source, by id and name."""
    if source is None:
        return f"tenant {tenant_id}"
    return f"tenant {source.tenant_id}, source {source.name!r} ({source.id})"


def error_text(outcome: Outcome, source: Source | None) -> str:
    code = f", Zoom code {outcome.code}" if outcome.code else ""
    return f"{outcome.message} [{where(source)}{code}]"


def record_failure(run_id: uuid.UUID, exc: BaseException) -> Outcome:
    """Write the final status of a failed run (in its own transaction) and return it."""
    outcome = classify(exc)
    with session_scope() as session:
        run = session.get(SyncRun, run_id, with_for_update=True)
        if run is None:
            return outcome
        source = session.get(Source, run.source_id)
        run.status = outcome.status
        run.error_code = outcome.code
        run.error_message = error_text(outcome, source)
        run.finished_at = utcnow()
        run.lease_until = None
        if outcome.not_before is not None:
            run.checkpoint = {**run.checkpoint, "not_before": outcome.not_before.isoformat()}
        if isinstance(exc, ZoomAuthError) and exc.reauthorize and source is not None:
            # A revoked refresh token needs an admin; scheduling stops until a good test.
            source.status = SourceStatus.REAUTHORIZE
            source.status_message = exc.admin_message
            source.next_aggregation_at = None
            source.next_activity_at = None
        log.warning(
            "run %s (%s%s) ended %s: %s [%s, Zoom code %s]",
            run.id, run.kind, f"/{run.stream}" if run.stream else "", outcome.status,
            type(exc).__name__, where(source), outcome.code,
        )
        if run.parent_id is not None:
            roll_up(session, run.parent_id)
    return outcome


def new_run(
    source: Source,
    kind: RunKind,
    trigger: RunTrigger | str,
    *,
    window: tuple[datetime | None, datetime | None] = (None, None),
    **fields: Any,
) -> SyncRun:
    """A queued run of a source (not added to a session). The caller commits it, then enqueues
    it: a fast worker must never look for a row that is not committed yet."""
    return SyncRun(tenant_id=source.tenant_id, source_id=source.id, kind=kind, trigger=trigger,
                   status=RunStatus.QUEUED, window_start=window[0], window_end=window[1],
                   **fields)


def begin(run: SyncRun) -> None:
    """Mark a run running. `started_at` keeps the first attempt's time (retry deadlines); a
    deferred run's resume time and reason are history once it runs again."""
    run.status = RunStatus.RUNNING
    run.checkpoint = {k: v for k, v in run.checkpoint.items() if k not in ("not_before",
                                                                          "reason")}
    run.lease_until = working_until()
    run.started_at = run.started_at or utcnow()
    run.finished_at = None
    run.error_code = None
    run.error_message = None
    attempts = int(run.details.get("attempts", 0)) + 1
    # Who holds it, for operators (and the fault tests): host and process.
    run.details = {**run.details, "attempts": attempts,
                   "held_by": f"{socket.gethostname()}:{os.getpid()}"}


def finish(run: SyncRun, status: RunStatus = RunStatus.SUCCEEDED, **details: Any) -> None:
    run.status = status
    run.finished_at = utcnow()
    run.lease_until = None
    if details:
        run.details = {**run.details, **details}


def run_lock(redis_client: redis.Redis | None, key: str, run_id: uuid.UUID) -> LeaseLock:
    """A lease on ``key`` owned by the run, so a redelivery of the same run recognises itself."""
    if redis_client is None:
        redis_client = get_redis()
    return LeaseLock(redis_client, key, owner=str(run_id))


@contextmanager
def working(
    run_id: uuid.UUID,
    lock: LeaseLock | None,
    what: str,
    on_failure: Callable[[uuid.UUID, Outcome], None] | None = None,
) -> Iterator[Callable[[], None]]:
    """Around the body of a run that holds ``lock`` (acquired): renew the lease (Redis lock and
    the run's row) while it works, release it after, and record any failure on the run
    (``on_failure`` then sees the outcome). Yields ``check``, which raises `LeaseLost` once the
    lease is gone and `StopRequested` once the worker is stopping; call it between pages, after
    the page's commit. Without a lock (a run serialised by its row lock, in one transaction)
    nothing is renewed; failures and stops are handled the same way.

    A transient failure whose record cannot be written (Postgres is the fault) propagates
    unrecorded: the task retries until Postgres answers, and the row stays `running` with a
    lease that runs out, so the sweep finds it if the retry is lost too."""
    try:
        with renewing(lock, RunLease(run_id)) if lock is not None else nullcontext() as renewer:
            def check() -> None:
                if renewer is not None and renewer.lost.is_set():
                    raise LeaseLost(f"the {what} lock's lease was lost; will retry")
                if stop.requested():
                    raise stop.StopRequested(f"the worker is stopping; the {what} run is "
                                             "queued again from its checkpoint")

            yield check
    except stop.StopRequested:
        hand_back(run_id)
        raise
    except (SystemExit, KeyboardInterrupt):
        # The process is going down mid-page: a stop, not a failure of the run.
        try:
            hand_back(run_id)
        except Exception:
            log.warning("run %s: could not hand back; its lease runs out and the sweep "
                        "sends it again", run_id)
        raise
    except BaseException as exc:
        if isinstance(exc, AlreadyRunning):
            raise
        try:
            outcome = record_failure(run_id, exc)
        except Exception as record_exc:
            if not is_transient(record_exc):
                raise
            # Nothing is recorded: the task must see a transient fault and retry.
            log.warning("run %s: could not record %s (%s); the task retries it",
                        run_id, type(exc).__name__, type(record_exc).__name__)
            raise record_exc from exc
        if on_failure is not None:
            on_failure(run_id, outcome)
        raise


def hand_back(run_id: uuid.UUID) -> SyncRun | None:
    """The worker is stopping: the run is queued again from its last committed checkpoint (not
    failed, not retried with a delay) and sent again once that is committed."""
    with session_scope() as session:
        run = session.get(SyncRun, run_id, with_for_update=True)
        if run is None or run.status in TERMINAL:
            return run
        run.status = RunStatus.QUEUED
        run.finished_at = None
        run.details = {**run.details, "handed_back_at": utcnow().isoformat()}
        send_after_commit(session, run)
        log.info("run %s handed back: the worker is stopping", run_id)
        if run.parent_id is not None:
            roll_up(session, run.parent_id)
        return run


def skip_duplicate(run: SyncRun, reason: str, holder: str | None = None) -> None:
    """Another run of the same work is in progress: this one ends `skipped` (caller commits).
    ``holder`` (that run's id) is kept so whoever waits for this run can follow that one, even
    after it has ended."""
    run.status = RunStatus.SKIPPED
    run.finished_at = utcnow()
    run.lease_until = None
    run.error_message = reason
    run.details = {**run.details, "skipped_reason": reason,
                   **({"duplicate_of": holder} if holder else {})}
    log.info("run %s skipped: %s", run.id, reason)


# -- plans and their chunks: a chunk's chain in its stream, and the plan's roll-up -------------


def chain_heads(chunks: Iterable[SyncRun]) -> list[SyncRun]:
    """The chunk to run next in each stream: the earliest one still queued, unless an earlier
    one is running or deferred (then the chain is already moving, or waits for it)."""
    by_stream: dict[str, list[SyncRun]] = {}
    for chunk in chunks:
        by_stream.setdefault(str(chunk.stream), []).append(chunk)
    heads = []
    now_floor = datetime.min.replace(tzinfo=UTC)
    for items in by_stream.values():
        for chunk in sorted(items, key=lambda c: c.window_start or now_floor):
            if chunk.status in (RunStatus.RUNNING, RunStatus.DEFERRED):
                break
            if chunk.status == RunStatus.QUEUED:
                heads.append(chunk)
                break
    return heads


def next_in_chain(session: Session, chunk: SyncRun) -> SyncRun | None:
    if chunk.parent_id is None:
        return None
    return session.exec(
        select(SyncRun)
        .where(SyncRun.parent_id == chunk.parent_id, SyncRun.stream == chunk.stream,
               SyncRun.status == RunStatus.QUEUED,
               col(SyncRun.window_start) > chunk.window_start)
        .order_by(col(SyncRun.window_start))
        .limit(1)
    ).first()


def roll_up(session: Session, plan_id: uuid.UUID) -> None:
    """The plan's status and counts from its chunks. A plan is never `succeeded` while a chunk
    is deferred or failed: data skipped must show."""
    plan = session.get(SyncRun, plan_id, with_for_update=True)
    if plan is None:
        return
    children = session.exec(select(SyncRun).where(SyncRun.parent_id == plan_id)).all()
    statuses = {RunStatus(c.status) for c in children}
    if RunStatus.RUNNING in statuses:
        status = RunStatus.RUNNING
    elif RunStatus.DEFERRED in statuses:
        status = RunStatus.DEFERRED
    elif RunStatus.QUEUED in statuses:
        status = RunStatus.RUNNING
    elif RunStatus.FAILED in statuses:
        status = RunStatus.FAILED
    elif RunStatus.RETRYABLE in statuses:
        status = RunStatus.RETRYABLE
    else:
        status = RunStatus.SUCCEEDED
    plan.status = status
    for name in ("pages", "seen", "inserted", "updated", "unchanged", "skipped"):
        setattr(plan, name, sum(getattr(c, name) for c in children))
    by_status: dict[str, int] = {}
    for c in children:
        by_status[str(c.status)] = by_status.get(str(c.status), 0) + 1
    plan.details = {**plan.details, "chunks_by_status": by_status}
    if status in TERMINAL:
        plan.finished_at = plan.finished_at or utcnow()
        failed = [c for c in children if c.status in (RunStatus.FAILED, RunStatus.RETRYABLE)]
        if failed:
            plan.error_code = failed[0].error_code
            plan.error_message = f"{len(failed)} chunk(s) did not complete: " + (
                failed[0].error_message or "")
    else:
        plan.finished_at = None
