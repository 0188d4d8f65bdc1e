"""One way into a run, for every kind: `hold(run_id, spec, body)`.

Once, here: load the run, end a delivery that has nothing to do (a finished run, a deferred one
whose time has not come, a run this task does not handle), enter the caller's admission with
it (the task shell's tenant slot), take the run's lock (a Redis lease, or the row lock), begin,
call the service's body, and record the outcome (`working`: lease renewal, failure record,
hand-back on stop). The body is a plain function of the open session,
the run and the between-pages `check`; it commits its pages on that session and finishes the
run (`lifecycle.finish`) in its last transaction. Its Zoom client, when it needs one, is bound
by the service's entry point, so a test can call the body with a rolled-back session and a
client of its own.

Two ways to hold a run:
- with a Redis lease (`Hold.lock_key`; aggregation, activity chunk): `begin` is committed on
  its own, so the run shows `running` while it works, and the lease is renewed until it ends;
  another delivery of the same run re-queues itself (`AlreadyRunning`), another run of the same
  key is waited for, or skipped (`skip_duplicates`);
- with the row lock (correlation, activity plan: short, Postgres only): the run is read `FOR
  UPDATE` and begin, body and finish commit in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from sqlmodel import Session

from worker.db import get_engine
from worker.kit.redis import get_redis
from worker.models import RunStatus, SyncRun, utcnow
from worker.runs import followups
from worker.runs import lifecycle as runs

Check = Callable[[], None]
Body = Callable[[Session, SyncRun, Check], None]
# Entered with the loaded run before its lock (the task shell's tenant slot).
Admit = Callable[[SyncRun], AbstractContextManager[Any]]


def no_check() -> None:
    """`check` of a body called outside a hold (tests, the demo): never stops it."""


def _any_run(_run: SyncRun) -> bool:
    return True


@dataclass(frozen=True)
class Hold:
    """What differs between the kinds of run at their boundary, and nothing else."""

    what: str  # named in messages: "aggregation", "stream", ...
    # The Redis lease the run works under; None: the row lock, one transaction.
    lock_key: Callable[[SyncRun], str] | None = None
    # Another run holds the key: end this one `skipped` (True) or wait for it (False).
    skip_duplicates: bool = False
    # A run this task does not handle (a chunk's id sent to the plan task) is left alone.
    accepts: Callable[[SyncRun], bool] = _any_run
    # Entered once the lock is held, around the body (the chunk's Heavy reservation).
    around: Callable[[SyncRun, redis.Redis], AbstractContextManager[Any]] | None = None
    # Sees the outcome once a failure is recorded (a failed chunk abandons its chain).
    on_failure: Callable[[uuid.UUID, runs.Outcome], None] | None = None


def waits_for_its_time(run: SyncRun, now: datetime) -> bool:
    """A deferred run delivered before its `not_before` (a stale delivery): the dispatcher
    resumes it when the time comes."""
    not_before = run.checkpoint.get("not_before")
    return (run.status == RunStatus.DEFERRED and bool(not_before)
            and datetime.fromisoformat(str(not_before)) > now)


def hold(
    run_id: uuid.UUID,
    spec: Hold,
    body: Body,
    *,
    redis_client: redis.Redis | None = None,
    enqueue: bool = True,
    now: datetime | None = None,
    admit: Admit | None = None,
) -> SyncRun:
    """Run ``body`` on the run, once, under its lock; returns the run as it ended.

    ``admit`` (the task shell's tenant slot, `worker/runs/task.py`) is entered with the loaded
    run before its lock is taken, and held until the body ends; it may refuse by raising.
    ``enqueue=False`` (tests, the benchmarks, the demo): follow-ups the body creates are
    stamped as sent but their tasks are not sent (`followups.hold_back`)."""
    leased = spec.lock_key is not None
    with Session(get_engine(), expire_on_commit=False) as session:
        if not enqueue:
            followups.hold_back(session)
        run = session.get(SyncRun, run_id, with_for_update=None if leased else True)
        if run is None:
            raise runs.RunMissing(f"sync run {run_id} does not exist")
        if run.status in runs.TERMINAL or not spec.accepts(run) or \
                waits_for_its_time(run, now or utcnow()):
            return run
        if redis_client is None and (leased or spec.around is not None):
            redis_client = get_redis()
        with ExitStack() as stack:
            if admit is not None:
                stack.enter_context(admit(run))
            lock = None
            if spec.lock_key is not None:
                lock = runs.run_lock(redis_client, spec.lock_key(run), run_id)
                if not lock.acquire():
                    holder = lock.holder()
                    if holder == str(run_id) or not spec.skip_duplicates:
                        raise runs.AlreadyRunning(
                            f"{spec.what} run {run_id} is busy (held by run {holder}); will "
                            "try again")
                    runs.skip_duplicate(
                        run, f"skipped: {spec.what} run {holder} of this source is already in "
                        "progress", holder)
                    session.commit()
                    return run
            if spec.around is not None:
                assert redis_client is not None
                stack.enter_context(spec.around(run, redis_client))
            check = stack.enter_context(runs.working(run_id, lock, spec.what,
                                                     spec.on_failure))
            try:
                runs.begin(run)
                if leased:
                    session.commit()  # `running` shows while it works; the row is not held
                body(session, run, check)
                session.commit()
            except BaseException:
                # Before the failure is recorded (on the same row, in its own transaction).
                session.rollback()
                raise
        return run
