"""`runs.hold`, the one way into a run: what a delivery with nothing to do leaves alone, and
that a failure is recorded after the body's transaction is rolled back (the record takes the
same row's lock)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlmodel import Session

from tests.factories import make_source, make_tenant
from worker.db import session_scope
from worker.models import RunKind, RunStatus, SyncRun, utcnow
from worker.runs.hold import Check, Hold, hold

pytestmark = pytest.mark.usefixtures("clean_db", "redis_client")

ROW_LOCKED = Hold(what="test")
LEASED = Hold(what="test", lock_key=lambda run: f"ai:lock:test:{run.source_id}")


def new_run(**fields: object) -> uuid.UUID:
    with session_scope() as session:
        source = make_source(session, make_tenant(session))
        run = SyncRun(tenant_id=source.tenant_id, source_id=source.id,
                      kind=RunKind.AGGREGATION, **fields)
        session.add(run)
        return run.id


def stored(run_id: uuid.UUID) -> SyncRun:
    with session_scope() as session:
        return session.get_one(SyncRun, run_id)


def never(_session: Session, _run: SyncRun, _check: Check) -> None:
    raise AssertionError("the body must not run")


def test_a_deferred_run_delivered_before_its_time_is_left_alone() -> None:
    later = (utcnow() + timedelta(hours=1)).isoformat()
    run_id = new_run(status=RunStatus.DEFERRED, checkpoint={"not_before": later})
    for spec in (ROW_LOCKED, LEASED):
        assert hold(run_id, spec, never).status == RunStatus.DEFERRED
    assert "attempts" not in stored(run_id).details  # never begun


def test_finished_runs_and_runs_the_task_does_not_handle_are_left_alone() -> None:
    done = new_run(status=RunStatus.SUCCEEDED)
    assert hold(done, LEASED, never).status == RunStatus.SUCCEEDED
    queued = new_run()
    assert hold(queued, Hold(what="test", accepts=lambda _run: False), never).status == \
        RunStatus.QUEUED
    assert stored(queued).status == RunStatus.QUEUED


@pytest.mark.parametrize("spec", [ROW_LOCKED, LEASED], ids=["row-locked", "leased"])
def test_a_failing_body_is_rolled_back_then_recorded(spec: Hold) -> None:
    run_id = new_run()

    def fails(session: Session, run: SyncRun, _check: Check) -> None:
        run.seen = 99
        session.flush()  # holds the run's row until rolled back
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        hold(run_id, spec, fails)
    run = stored(run_id)
    assert run.status == RunStatus.FAILED
    assert "internal error (ValueError)" in (run.error_message or "")
    assert run.seen == 0  # the body's write went with its transaction
    # Leased, `begin` was committed on its own; row-locked, it went with the body.
    assert run.details.get("attempts") == (1 if spec.lock_key else None)


def test_a_leased_run_shows_running_while_its_body_works() -> None:
    run_id = new_run()
    seen: list[RunStatus] = []

    def body(_session: Session, run: SyncRun, _check: Check) -> None:
        seen.append(stored(run.id).status)  # from another connection
        run.seen = 3

    run = hold(run_id, LEASED, body)
    assert seen == [RunStatus.RUNNING]
    assert run.status == RunStatus.RUNNING  # finishing is the body's (in its last commit)
    assert stored(run_id).seen == 3  # but what it wrote is committed
