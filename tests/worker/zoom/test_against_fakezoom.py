"""The Zoom client against fakezoom served over HTTP: pagination, faults, Zoom's error codes,
and no secret in any log record."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy.engine import Engine

from fakezoom.server import FakeZoomServer
from fakezoom.testing import running_fakezoom
from tests.env import settings_pointed_at
from tests.factories import add_app_source
from tests.worker.zoom import harness
from worker import clients
from worker.zoom.client import ZoomClient, encode_meeting_uuid
from worker.zoom.errors import (
    ZoomBadResponse,
    ZoomForbidden,
    ZoomNotFound,
    ZoomScopeError,
)
from worker.zoom.pagination import items_of, month_windows, window_params


@pytest.fixture(scope="module")
def server() -> Iterator[FakeZoomServer]:
    with running_fakezoom(users=700, days=20) as srv, settings_pointed_at(srv):
        yield srv


@pytest.fixture
def fake(server: FakeZoomServer, redis_client: redis.Redis, clean_db: Engine  # noqa: ARG001 - requested for its side effect
         ) -> Iterator[FakeZoomServer]:
    server.fake.reset_stats()
    server.fake.clear_faults()
    server.fake.configure(rate_limits_enabled=False)
    clients.reset()
    with harness.catching_logs() as logs:
        yield server
    harness.assert_no_secret_logged(logs, harness.known_secrets(server))


def _client(fake: FakeZoomServer, general: bool = False) -> ZoomClient:
    account = fake.fake.account(0)
    app = account.add_app("general") if general else account.s2s_app
    sid: uuid.UUID = add_app_source(account, app)
    client = clients.client_for_source(sid)
    client.deadline_seconds = 30
    return client


def _ids(client: ZoomClient, status: str) -> list[str]:
    return [u["id"] for u in items_of(client.iter_pages("/users", {"status": status}, "users"))]


@pytest.mark.usefixtures("clean_db")
def test_pagination_yields_every_user_once_at_page_size_300(
    fake: FakeZoomServer
) -> None:
    client = _client(fake)
    truth = fake.fake.account(0)
    for status in ("active", "inactive", "pending"):
        ids = _ids(client, status)
        assert len(ids) == len(set(ids))
        assert sorted(ids) == sorted(u["id"] for u in truth.all_users(status))
    pages = list(client.iter_pages("/users", {"status": "active"}, "users"))
    assert len(pages) >= 2
    assert all(len(p.items) <= 300 for p in pages)
    assert [p.number for p in pages] == list(range(1, len(pages) + 1))


@pytest.mark.usefixtures("clean_db")
def test_injected_5xx_and_dropped_connections_are_retried(
    fake: FakeZoomServer
) -> None:
    client = _client(fake)
    client._sleep = lambda seconds: time.sleep(min(seconds, 0.05))  # same path, shorter waits
    expected = sorted(u["id"] for u in fake.fake.account(0).all_users("active"))
    fake.fake.set_faults(error_next=2)
    assert sorted(_ids(client, "active")) == expected
    fake.fake.set_faults(drop_connection_next=2)
    assert sorted(_ids(client, "active")) == expected
    faults = fake.fake.stats()["faults"]
    assert faults.get("5xx") == 2
    assert faults.get("dropped") == 2


@pytest.mark.usefixtures("clean_db")
def test_a_malformed_page_raises_bad_response(fake: FakeZoomServer) -> None:
    client = _client(fake)
    fake.fake.set_faults(malformed_json_next=1)
    with pytest.raises(ZoomBadResponse):
        _ids(client, "active")


@pytest.mark.usefixtures("clean_db")
def test_general_app_pages_reports_over_month_windows(
    fake: FakeZoomServer
) -> None:
    client = _client(fake, general=True)
    today = fake.fake.clock.today()
    events = []
    for window in month_windows(today - dt.timedelta(days=3), today):
        events.extend(items_of(client.iter_pages("/report/activities", window_params(window),
                                                 "activity_logs")))
    truth = fake.fake.account(0).events(today - dt.timedelta(days=3), today)
    assert len(events) == len(truth)
    assert events


@pytest.mark.usefixtures("clean_db")
def test_zoom_codes_reach_the_caller(fake: FakeZoomServer) -> None:
    client = _client(fake)
    path = f"/report/meetings/{encode_meeting_uuid('nope==')}/participants"
    with pytest.raises(ZoomNotFound) as gone:
        list(items_of(client.iter_pages(path, None, "participants")))
    assert gone.value.code == 3001
    assert gone.value.status == 404
    account = fake.fake.account(0)
    scopeless = account.add_app("s2s", scopes=["user:read:admin"])
    limited = clients.client_for_source(add_app_source(account, scopeless))
    with pytest.raises(ZoomScopeError) as scope:
        limited.get("/report/activities", {"from": "2024-01-01", "to": "2024-01-02"})
    assert scope.value.code in (4700, 4711)
    assert scope.value.missing


@pytest.mark.usefixtures("clean_db")
def test_double_encoded_meeting_uuids_and_the_html_403(
    fake: FakeZoomServer
) -> None:
    client = _client(fake)
    today = fake.fake.clock.today()
    meetings = fake.fake.account(0).meetings(today - dt.timedelta(days=19), today)
    odd = [m["uuid"] for m in meetings if m["uuid"].startswith("/") or "//" in m["uuid"]]
    plain = [m["uuid"] for m in meetings if "/" not in m["uuid"]]
    assert odd
    assert plain
    for meeting in odd[:2]:
        path = f"/report/meetings/{encode_meeting_uuid(meeting)}/participants"
        assert list(items_of(client.iter_pages(path, None, "participants")))
    fake.fake.set_faults(html_403_meeting_uuid=plain[0])
    with pytest.raises(ZoomForbidden):
        client.get(f"/report/meetings/{encode_meeting_uuid(plain[0])}/participants")
