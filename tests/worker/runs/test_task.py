"""The task shell: a full tenant re-queues without a retry, transient errors retry with the run
queued again, permanent ones end the run at once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import Retry

from tests.factories import make_source, make_tenant
from worker.db import session_scope
from worker.kit.locks import TenantSlot
from worker.models import RunKind, RunStatus, SyncRun
from worker.runs import lifecycle as runs
from worker.runs.hold import Admit, Hold, hold
from worker.runs.task import execute
from worker.settings import get_settings
from worker.zoom.errors import ZoomAuthError, ZoomServerError


class StubTask:
    """Enough of a bound Celery task for `execute`."""

    name = "zoom.aggregate"
    max_retries = 3

    def __init__(self) -> None:
        self.request = SimpleNamespace(id=str(uuid.uuid4()), retries=0)
        self.retried: list[dict[str, Any]] = []

    def retry(self, exc: BaseException, countdown: float, **options: Any) -> Retry:
        self.retried.append({"exc": exc, "countdown": countdown, **options})
        return Retry(exc=exc, when=countdown)


def held(service: Callable[[uuid.UUID], None]) -> Callable[..., SyncRun]:
    """A service entry point around ``service(run_id)``: it holds the run as the real ones do
    (`runs.hold`, row lock), so the shell's admission sees the run `hold` loaded."""

    def entry(run_id: uuid.UUID, *, admit: Admit | None = None) -> SyncRun:
        return hold(run_id, Hold(what="test"), lambda _s, run, _c: service(run.id), admit=admit)

    return entry


def new_run() -> SyncRun:
    with session_scope() as session:
        source = make_source(session, make_tenant(session))
        run = SyncRun(tenant_id=source.tenant_id, source_id=source.id,
                      kind=RunKind.AGGREGATION)
        session.add(run)
        return run


def status(run_id: uuid.UUID) -> SyncRun:
    with session_scope() as session:
        return session.get_one(SyncRun, run_id)


@pytest.mark.usefixtures("clean_db")
def test_a_tenant_at_its_limit_requeues_the_task_without_running_it(redis_client) -> None:
    run = new_run()
    limit = get_settings().tenant_max_concurrent_tasks
    busy = [TenantSlot(redis_client, str(run.tenant_id), holder=f"other-{i}", limit=limit,
                       lease=30) for i in range(limit)]
    assert all(s.acquire() for s in busy)
    called: list[uuid.UUID] = []
    task = StubTask()
    # Ends this delivery as RETRY (Flower shows it waiting, not succeeded), with no Celery retry:
    # the same task id is sent again with a countdown.
    with pytest.raises(Retry, match="requeued: tenant at its concurrency limit"):
        execute(task, str(run.id), held(called.append))
    assert called == []
    assert task.retried == []
    assert redis_client.llen("aggregation") == 1  # the same task, sent again with a countdown
    sent = json.loads(redis_client.lindex("aggregation", 0))
    assert sent["headers"]["id"] == task.request.id
    assert status(run.id).status == RunStatus.QUEUED

    busy[0].release()
    assert execute(StubTask(), str(run.id), held(called.append)) == "done"
    assert called == [run.id]
    # Its slot was given back.
    assert TenantSlot(redis_client, str(run.tenant_id), holder="x", limit=limit).in_use() == \
        limit - 1


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_a_transient_failure_retries_with_the_run_queued_again() -> None:
    run = new_run()

    def flaky(_run_id: uuid.UUID) -> None:
        raise ZoomServerError("GET /users: 503", None, 503)

    task = StubTask()
    with pytest.raises(Retry):
        execute(task, str(run.id), held(flaky))
    assert len(task.retried) == 1
    assert status(run.id).status == RunStatus.QUEUED
    # Out of retries: the run stays retryable.
    task.request.retries = task.max_retries
    with pytest.raises(ZoomServerError):
        execute(task, str(run.id), held(flaky))
    assert status(run.id).status == RunStatus.RETRYABLE


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_a_permanent_failure_ends_the_run_with_the_zoom_code() -> None:
    run = new_run()

    def revoked(_run_id: uuid.UUID) -> None:
        raise ZoomAuthError("invalid_grant", "invalid_grant", 400, reauthorize=True,
                            admin_message="paste a new refresh token")

    task = StubTask()
    with pytest.raises(ZoomAuthError):
        execute(task, str(run.id), held(revoked))
    assert task.retried == []
    done = status(run.id)
    assert done.status == RunStatus.FAILED
    assert done.error_code == "invalid_grant"
    assert str(run.source_id) in (done.error_message or "")
    # A finished run ignores another delivery.
    assert execute(StubTask(), str(run.id), held(revoked)) == "noop: run already failed"
    # A run deleted with its source is logged and its message dropped.
    assert execute(StubTask(), str(uuid.uuid4()), held(revoked)) == "missing"


def test_rate_limits_defer_the_run_until_after_the_cap_or_the_storm() -> None:
    from datetime import UTC, datetime

    from worker.zoom.errors import ZoomRateLimited

    now = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    daily = runs.classify(ZoomRateLimited("cap", daily=True), now)
    assert daily.status == RunStatus.DEFERRED
    assert daily.not_before is not None
    assert daily.not_before.date() == now.date().replace(day=2)
    storm = runs.classify(ZoomRateLimited("429s", retry_after=2), now)
    assert storm.status == RunStatus.DEFERRED
    assert storm.not_before is not None
    assert now < storm.not_before < daily.not_before


@pytest.mark.usefixtures("redis_client")
def test_an_outcome_postgres_cannot_record_is_retried_without_limit_never_acked() -> None:
    """Postgres goes down while the run fails (a throwaway cluster of this test's own): the
    failure cannot be recorded, so the task retries, even past its retry limit, instead of
    ending; once Postgres is back the row is still there to be run (or swept)."""
    from tests.worker.runs.harness import ThrowawayPostgres, database_at
    from worker.runs.task import UNLIMITED, UNRECORDED_RETRY_CAP_SECONDS

    pg = ThrowawayPostgres()
    try:
        with database_at(pg.url):
            run = new_run()

            def fails_while_postgres_goes_away(_run_id: uuid.UUID) -> None:
                pg.stop()
                raise ZoomServerError("GET /users: 503", None, 503)

            task = StubTask()
            task.request.retries = task.max_retries  # even out of ordinary retries
            with pytest.raises(Retry):
                execute(task, str(run.id), held(fails_while_postgres_goes_away))
            [retry] = task.retried
            assert retry["max_retries"] == UNLIMITED
            assert retry["countdown"] <= UNRECORDED_RETRY_CAP_SECONDS
            pg.start()
            assert status(run.id).status == RunStatus.QUEUED  # nothing recorded as final
    finally:
        pg.close()
