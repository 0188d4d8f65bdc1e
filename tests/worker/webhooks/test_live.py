"""Webhooks end to end with real processes: the API in a uvicorn subprocess, a `celery worker`
subprocess, fakezoom delivering signed webhooks over HTTP, Postgres and Redis.

1,000 sign-ins (300 by default, see EVENTS) reach the API with 20% duplicated, 10% dropped
and 10% reordered; the daily pull afterwards leaves exactly the fake's events, one row each,
and counts the dropped ones as missed. With the API pointed at a dead broker, Zoom's requests
are still answered (the client here gives up after Zoom's 3 s, like Zoom) and the beat tick's
sweep delivers them later.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select

from fakezoom.server import FakeZoomServer
from fakezoom.webhooks import meeting_ended_event
from tests.env import settings_pointed_at
from tests.factories import add_app_source as add_source
from tests.webhook_signing import event_body, sign_in_object, signed_headers
from tests.worker.helpers import (
    WORKER_SETTINGS,
    fake_config,
    stored_participant_keys,
    worker_env,
)
from tests.worker.test_flow import Worker, wait_until
from tests.worker.webhooks.test_service import (
    SECRET,
    signin_sync,
    source_and_meetings,
    with_secret,
)
from worker.activity.planner import heavy_budget
from worker.activity.service import event_key, participant_key
from worker.db import session_scope
from worker.models import (
    ActivityEvent,
    Meeting,
    Source,
    UserDailySummary,
    WebhookEvent,
    utcnow,
)
from worker.scheduling.service import dispatch_due

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
# The issue asks for 1,000 (run with AI_TEST_WEBHOOK_EVENTS=1000, about 3 minutes on a shared
# 2-core box); the default keeps the suite's run time down.
EVENTS = int(os.environ.get("AI_TEST_WEBHOOK_EVENTS", "300"))
ZOOM_TIMEOUT = 3.0  # Zoom's: an answer later than this is a failed delivery


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def api_process(env: dict[str, str], log: Path) -> Iterator[str]:
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None
        wait_until(up, 60, what="the API to start")
        assert proc.poll() is None, log.read_text()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def zoom(clean_db: Any, redis_client: Any) -> Iterator[FakeZoomServer]:  # noqa: ARG001 - requested for its side effect
    with FakeZoomServer(fake_config(users=60, accounts=1)) as server, \
            settings_pointed_at(server, **WORKER_SETTINGS):
        yield server
        server.fake.webhooks.close()


@pytest.fixture
def start_worker(zoom: FakeZoomServer, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    env = {**os.environ, **worker_env(zoom)}
    started: list[Worker] = []

    def start(queues: str = "webhooks") -> Worker:
        w = Worker(env, tmp_path / "worker.log")
        out = w.log.open("ab")
        w.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.tasks", "worker", "-P", "prefork",
             "-c", "2", "-Q", queues, "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-l", "info", "-n", f"wh-{uuid.uuid4().hex[:6]}@%h"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()  # the child has its own copy of the descriptor
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def pending(source_id: uuid.UUID) -> int:
    with session_scope() as session:
        return int(session.exec(select(func.count()).select_from(WebhookEvent).where(
            WebhookEvent.source_id == source_id, WebhookEvent.status == "pending")).one())


def activity(source_id: uuid.UUID) -> list[str]:
    with session_scope() as session:
        return list(session.exec(select(ActivityEvent.event_key).where(
            ActivityEvent.source_id == source_id)))


def test_a_thousand_unreliable_webhooks_and_the_next_pull_leave_exactly_zooms_events(
    zoom: FakeZoomServer, start_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    with_secret(source_id)
    worker = start_worker()
    with api_process({**os.environ, **worker_env(zoom)}, tmp_path / "api.log") as api:
        zoom.fake.webhooks.configure(
            url=f"{api}/v1/webhooks/zoom/{source_id}", secret=SECRET, drop_rate=0.1,
            duplicate_rate=0.2, reorder_rate=0.1, retry_scale=0.001, seed=7)
        users = account.all_users("active")
        # Distinct seconds: one event per (user, second), so every event is its own row.
        base = int(time.time()) - EVENTS - 5
        for n in range(EVENTS):
            account.sign_in(users[n % len(users)]["id"], when=base + n,
                            kind="Sign in" if n % 3 else "Sign out",
                            client_type=("Mac", "Win", "iOS")[n % 3])
        assert zoom.fake.webhooks.flush(300), zoom.fake.webhooks.truth()
        truth = zoom.fake.webhooks.truth()
        assert truth["given_up"] == []
        assert truth["duplicated"] > EVENTS // 10
        dropped = len(truth["dropped"])
        assert EVENTS // 20 < dropped < EVENTS * 3 // 20
        wait_until(lambda: pending(source_id) == 0, 300, worker, "the inbox to drain")

    pushed = activity(source_id)
    assert len(pushed) == len(set(pushed)) == EVENTS - dropped
    first = dt.datetime.fromtimestamp(base, dt.UTC).date()
    last = dt.datetime.fromtimestamp(base + EVENTS, dt.UTC).date()
    run = signin_sync(source_id, first, last)
    stored = activity(source_id)
    expected = {event_key(source_id, e) for e in account.events(first, last)}
    assert len(stored) == len(set(stored)) == len(expected)
    assert set(stored) == expected
    assert run.details["missed_by_webhook"] == dropped
    with session_scope() as session:
        sign_ins = session.exec(select(func.sum(UserDailySummary.sign_ins)).where(
            UserDailySummary.source_id == source_id,
            UserDailySummary.day >= first)).one()
    assert sign_ins == sum(1 for e in account.events(first, last) if e["type"] == "Sign in")


def test_with_the_broker_down_zoom_is_answered_and_the_sweep_delivers_later(
    zoom: FakeZoomServer, start_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    with_secret(source_id)
    dead_broker = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    env = {**os.environ, **worker_env(zoom), "AI_BROKER_URL": dead_broker}
    bodies = [event_body("user.signed_in", sign_in_object(
        f"user{n}@acme.example", f"2026-12-01T08:00:{n:02d}Z")) for n in range(20)]
    with api_process(env, tmp_path / "api.log") as api, \
            httpx.Client(timeout=ZOOM_TIMEOUT) as client:
        for body in bodies:
            # A timeout here (Zoom's 3 s) fails the test, as it would fail Zoom's delivery.
            response = client.post(f"{api}/v1/webhooks/zoom/{source_id}", content=body,
                                   headers=signed_headers(SECRET, body))
            assert response.status_code == 200, response.text
    assert pending(source_id) == len(bodies)
    assert activity(source_id) == []

    start_worker()
    # The beat tick (the real dispatch_due, on the live broker), past the API's own grace.
    dispatch_due(now=utcnow() + dt.timedelta(seconds=15))
    wait_until(lambda: pending(source_id) == 0, 60, what="the swept events to be processed")
    assert len(set(activity(source_id))) == len(bodies)


def participants_requests(zoom: FakeZoomServer) -> int:
    """GET /report/meetings/{id}/participants requests fakezoom has answered."""
    return sum(ep["requests"] for acc in zoom.fake.stats()["accounts"].values()
               for name, ep in acc["by_endpoint"].items() if name.endswith("/participants"))


def participants_status(source_id: uuid.UUID, meeting_uuid: str) -> str | None:
    with session_scope() as session:
        meeting = session.exec(select(Meeting).where(Meeting.source_id == source_id,
                                                     Meeting.uuid == meeting_uuid)).first()
        return None if meeting is None else meeting.participants_status


def fetches_done(worker: Worker) -> list[str]:
    """What the worker's participants tasks returned (Celery logs each at INFO)."""
    return [m.group(1) for m in re.finditer(
        r"zoom\.webhook_meeting_participants\[[^]]+\] succeeded in \S+s: (.*?)(?: \[task=.*)?$",
        worker.text(), re.MULTILINE)]


def test_a_signed_meeting_ended_fetches_the_participants_once_within_the_heavy_budget(
    zoom: FakeZoomServer, start_worker: Callable[..., Worker], tmp_path: Path,
    redis_client: Any
) -> None:
    account = zoom.fake.account(0)
    source_id, (first, second) = source_and_meetings(zoom, 2)
    with session_scope() as session:
        budget = heavy_budget(redis_client, session.get_one(Source, source_id))
    today = dt.datetime.now(dt.UTC).date()
    worker = start_worker("webhooks,activity")
    with api_process({**os.environ, **worker_env(zoom)}, tmp_path / "api.log") as api:
        # Every event delivered twice (half of the copies re-serialised: a new inbox row), and
        # Zoom's event sent twice more: at least two fetch tasks race for one report.
        zoom.fake.webhooks.configure(url=f"{api}/v1/webhooks/zoom/{source_id}", secret=SECRET,
                                     duplicate_rate=1.0, seed=3)
        meeting_ended_event(account, first["uuid"])
        meeting_ended_event(account, first["uuid"])
        assert zoom.fake.webhooks.flush(60)
        wait_until(lambda: pending(source_id) == 0, 60, worker, "the events to be processed")
        with session_scope() as session:
            stored = session.exec(select(func.count()).select_from(WebhookEvent).where(
                WebhookEvent.source_id == source_id,
                WebhookEvent.outcome == "meeting stored; participants report queued")).one()
        assert stored >= 2
        wait_until(lambda: len(fetches_done(worker)) == stored, 60, worker,
                   "every participants task to finish")
        assert sorted(fetches_done(worker))[:-1] == ["'noop'"] * (stored - 1)
        assert participants_status(source_id, first["uuid"]) == "fetched"
        assert participants_requests(zoom) == 1
        expected = {participant_key(source_id, first["uuid"], p)
                    for p in account.participants(first["uuid"])}
        assert stored_participant_keys(source_id) == expected
        # The one Heavy call was counted in the account's day, and nothing is left reserved.
        state = budget.state(today)
        assert state.used == 1
        assert state.reserved == 0

        # With the day's Heavy budget spent elsewhere, the next meeting waits for the pull.
        assert budget.reserve("elsewhere", state.free, today) is not None
        meeting_ended_event(account, second["uuid"])
        assert zoom.fake.webhooks.flush(60)
        wait_until(lambda: any(r.startswith("'deferred") for r in fetches_done(worker)), 60,
                   worker, "the second meeting's fetch to be deferred")
    assert participants_requests(zoom) == 1
    assert participants_status(source_id, second["uuid"]) == "pending"
