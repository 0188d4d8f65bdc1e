"""End to end with real processes: a `celery worker` subprocess (prefork, 2 children) on the
test Redis, fakezoom as a real HTTP server, Postgres. A connection test starts everything; the
rows must equal the fake's ground truth. Then: duplicates change nothing, and a worker killed
with SIGKILL mid-task has its run sent again by beat's sweep (its lease in Postgres ran out; the
broker's visibility timeout stays at its 4 h default) to a restarted worker, with the same end
result. (tests/worker/runs/ has the fault tests with a second worker alive.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from fakezoom.server import FakeZoomServer
from tests.env import settings_pointed_at
from tests.factories import add_app_source
from tests.worker.helpers import (
    WORKER_SETTINGS,
    count,
    fake_config,
    new_test,
    row_counts,
    stored_event_keys,
    stored_pairs,
    stored_participant_keys,
    stored_summaries,
    stored_users,
    truth_event_keys,
    truth_group_members,
    truth_participant_keys,
    truth_role_members,
    truth_summaries,
    truth_users,
    worker_env,
)
from tests.worker.runs.harness import beat_proc
from worker import dispatch
from worker.db import session_scope
from worker.models import (
    AccountCorrelation,
    ConnectionTest,
    Identity,
    RunKind,
    RunStatus,
    Source,
    Stream,
    SyncRun,
    ZoomGroupMember,
    ZoomRoleMember,
    ZoomUser,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Short enough that a killed worker's run is swept up again within seconds.
LEASE_SECONDS = 3


class Worker:
    """A `celery worker` in its own process group, so SIGKILL takes the children too."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.tasks", "worker", "-P", "prefork",
             "-c", "2", "-Q", "connection_tests,aggregation,activity,scheduling",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info",
             "-n", f"test-{uuid.uuid4().hex[:6]}@%h"],
            cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()  # the child has its own copy of the descriptor
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self) -> str:
        return self.text()[-6000:]


@pytest.fixture
def fake(clean_db: Any, redis_client: Any, request: pytest.FixtureRequest  # noqa: ARG001 - requested for its side effect
         ) -> Iterator[FakeZoomServer]:
    config = fake_config(**getattr(request, "param", {}))
    with FakeZoomServer(config) as server, settings_pointed_at(server, **WORKER_SETTINGS):
        yield server


@pytest.fixture
def worker(fake: FakeZoomServer, tmp_path: Path) -> Iterator[Callable[[], Worker]]:
    env = {**os.environ, **worker_env(fake),
           "AI_DISPATCH_INTERVAL_SECONDS": "1",
           "AI_LOCK_LEASE_SECONDS": str(LEASE_SECONDS),
           "AI_REQUEUE_COUNTDOWN_SECONDS": "1",
           "AI_RETRY_BASE_SECONDS": "1"}
    started: list[Any] = []
    # Beat's tick sends again what a killed worker held (the sweep).
    started.append(beat_proc(env, tmp_path / "beat.log").start())

    def start() -> Worker:
        w = Worker(env, tmp_path / "worker.log").start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def wait_until(predicate: Callable[[], bool], timeout: float, worker: Worker | None = None,
               what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    logs = worker.tail() if worker else ""
    raise AssertionError(f"timed out waiting for {what}\n--- worker log ---\n{logs}")


def runs(source_id: uuid.UUID, kind: str | None = None, top: bool = True) -> list[SyncRun]:
    with session_scope() as session:
        stmt = select(SyncRun).where(SyncRun.source_id == source_id)
        if kind:
            stmt = stmt.where(SyncRun.kind == kind)
        if top:
            stmt = stmt.where(col(SyncRun.parent_id).is_(None))
        return list(session.exec(stmt))


FINISHED = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.RETRYABLE, RunStatus.SKIPPED,
            RunStatus.DEFERRED}


def settled(source_id: uuid.UUID) -> bool:
    """Test done, and aggregation, correlation and activity each finished."""
    with session_scope() as session:
        tests = session.exec(select(ConnectionTest).where(
            ConnectionTest.source_id == source_id)).all()
        if not tests or any(t.status in ("queued", "running") for t in tests):
            return False
    all_runs = runs(source_id)
    got = {str(r.kind) for r in all_runs}
    return got == {RunKind.AGGREGATION, RunKind.CORRELATION, RunKind.ACTIVITY} and all(
        r.status in FINISHED for r in all_runs)


def start_test(source_id: uuid.UUID) -> None:
    test_id = new_test(source_id)
    with session_scope() as session:
        tenant_id = session.get_one(Source, source_id).tenant_id
    dispatch.enqueue_connection_test(test_id, tenant_id=tenant_id, source_id=source_id)


def add_identities(source_id: uuid.UUID, emails: list[str]) -> None:
    with session_scope() as session:
        tenant_id = session.get_one(Source, source_id).tenant_id
        for i, email in enumerate(emails):
            session.add(Identity(tenant_id=tenant_id, external_id=f"hr-{i}",
                                 email=email.upper(), email_normalized=email.lower()))


def assert_matches_truth(fake: FakeZoomServer, index: int, source_id: uuid.UUID,
                         with_roles: bool) -> None:
    account = fake.fake.account(index)
    assert stored_users(source_id) == truth_users(account)
    assert stored_pairs(ZoomGroupMember, "group_zoom_id", source_id) == \
        truth_group_members(account)
    assert stored_pairs(ZoomRoleMember, "role_zoom_id", source_id) == \
        truth_role_members(account, with_scope=with_roles)
    assert stored_event_keys(source_id) == truth_event_keys(account, source_id)
    assert stored_participant_keys(source_id) == truth_participant_keys(account, source_id)
    assert stored_summaries(source_id) == truth_summaries(account)


def test_two_tenants_flow_from_connection_test_to_rows_equal_to_zoom(fake, worker) -> None:
    w = worker()
    s2s = add_app_source(fake.fake.account(0), fake.fake.account(0).s2s_app)
    general = add_app_source(fake.fake.account(1), fake.fake.account(1).general_app)
    initial_refresh_token = fake.fake.account(1).general_app.refresh_token
    emails = [u["email"] for u in fake.fake.account(0).all_users()[:10]]
    add_identities(s2s, emails)
    start_test(s2s)
    start_test(general)
    wait_until(lambda: settled(s2s) and settled(general), 120, w, "both flows")

    for source_id in (s2s, general):
        for run in runs(source_id):
            assert run.status == RunStatus.SUCCEEDED, (run.kind, run.error_message)
        with session_scope() as session:
            source = session.get_one(Source, source_id)
            assert source.status == "active"
            assert source.next_activity_at is not None
    assert_matches_truth(fake, 0, s2s, with_roles=False)
    assert_matches_truth(fake, 1, general, with_roles=True)
    assert count(AccountCorrelation, s2s) == 10

    # No secret reached the worker's log or a run record.
    apps = [fake.fake.account(0).s2s_app, fake.fake.account(1).general_app]
    secrets = [a.client_secret for a in apps] + [initial_refresh_token]
    records = repr([(r.error_message, r.details, r.checkpoint)
                    for s in (s2s, general) for r in runs(s, top=False)])
    for secret in secrets:
        assert secret
        assert secret not in w.text()
        assert secret not in records

    # Every task again, twice at once: no row count changes.
    before = {s: row_counts(s) for s in (s2s, general)}
    for source_id in (s2s, general):
        with session_scope() as session:
            tenant_id = session.get_one(Source, source_id).tenant_id
            new = [SyncRun(tenant_id=tenant_id, source_id=source_id, kind=kind)
                   for kind in (RunKind.AGGREGATION, RunKind.AGGREGATION, RunKind.ACTIVITY,
                                RunKind.ACTIVITY, RunKind.CORRELATION)]
            session.add_all(new)
        for run in new:
            dispatch.enqueue_run(run)
            dispatch.enqueue_run(run)  # the same message twice, too
    wait_until(lambda: all(r.status in FINISHED for s in (s2s, general) for r in runs(s))
               and all(r.status in FINISHED for s in (s2s, general)
                       for r in runs(s, top=False)), 120, w, "the duplicate runs")
    assert {s: row_counts(s) for s in (s2s, general)} == before
    for source_id in (s2s, general):
        for run in runs(source_id):
            # A concurrent duplicate aggregation is skipped and says why; nothing failed.
            assert run.status in (RunStatus.SUCCEEDED, RunStatus.SKIPPED), run.error_message
            if run.status == RunStatus.SKIPPED:
                assert "already in progress" in (run.error_message or "")


@pytest.mark.parametrize("fake", [{"users": 25, "days": 6, "accounts": 1}], indirect=True)
def test_a_worker_killed_mid_task_has_its_task_redelivered_with_the_same_result(
    fake, worker
) -> None:
    account = fake.fake.account(0)
    source_id = add_app_source(account, account.s2s_app, status="active")
    with session_scope() as session:
        tenant_id = session.get_one(Source, source_id).tenant_id

    # Mid-aggregation: the first page of users is committed, the rest is still coming.
    fake.fake.set_faults(latency_ms=400)
    w = worker()
    with session_scope() as session:
        agg = SyncRun(tenant_id=tenant_id, source_id=source_id, kind=RunKind.AGGREGATION)
        session.add(agg)
    dispatch.enqueue_run(agg)
    wait_until(lambda: count(ZoomUser, source_id) > 0, 60, w, "the first page of users")
    w.kill()
    assert runs(source_id, RunKind.AGGREGATION)[0].status == RunStatus.RUNNING
    fake.fake.set_faults(latency_ms=0)
    w = worker()
    wait_until(lambda: runs(source_id, RunKind.AGGREGATION)[0].status in FINISHED, 60, w,
               "the redelivered aggregation")
    assert runs(source_id, RunKind.AGGREGATION)[0].status == RunStatus.SUCCEEDED
    assert stored_users(source_id) == truth_users(account)

    # Mid-chunk: meetings of the window are being fetched host by host.
    fake.fake.set_faults(latency_ms=150)
    with session_scope() as session:
        plan = SyncRun(tenant_id=tenant_id, source_id=source_id, kind=RunKind.ACTIVITY,
                       details={"streams": [Stream.MEETINGS, Stream.SIGNINS]})
        session.add(plan)
    dispatch.enqueue_run(plan)

    def chunk_in_progress() -> bool:
        chunks = runs(source_id, RunKind.ACTIVITY, top=False)
        return any(c.stream == Stream.MEETINGS and c.status == RunStatus.RUNNING
                   and c.checkpoint.get("hosts_done") for c in chunks)

    wait_until(chunk_in_progress, 60, w, "a meetings chunk half done")
    w.kill()
    fake.fake.set_faults(latency_ms=0)
    w = worker()
    wait_until(lambda: all(r.status in FINISHED for r in runs(source_id, top=False)), 90, w,
               "the redelivered chunk")
    for run in runs(source_id, top=False):
        assert run.status == RunStatus.SUCCEEDED, (run.kind, run.stream, run.error_message)
    assert stored_participant_keys(source_id) == truth_participant_keys(account, source_id)
    assert stored_event_keys(source_id) == truth_event_keys(account, source_id)
    assert stored_summaries(source_id) == truth_summaries(account)
