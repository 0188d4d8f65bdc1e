"""next_page_token pagination: every item exactly once, sizes, expiry and binding to the query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import time_machine

from fakezoom.config import AccountSpec, AppSpec, FakeZoomConfig
from fakezoom.server import FakeZoomServer
from fakezoom.testing import get_token, running_fakezoom
from tests.fixtures.clock import BOUNDARIES

SCOPES = ["user:read:admin", "group:read:admin", "role:read:admin", "report:read:admin"]


@pytest.fixture(scope="module", params=list(BOUNDARIES.values()), ids=list(BOUNDARIES))
def server(request: pytest.FixtureRequest) -> Iterator[FakeZoomServer]:
    # The fake's history ends today: serve it as of each date where calendars break.
    travel = time_machine.travel(request.param, tick=True)
    travel.start()
    try:
        cfg = FakeZoomConfig(seed=11, rate_limits_enabled=False, frozen_clock=True, accounts=[
            AccountSpec(users=75, days=8, events_per_user_per_day=0.6, max_participants=40,
                        apps=[AppSpec(kind="s2s", scopes=SCOPES)])])
        with running_fakezoom(cfg) as srv:
            yield srv
    finally:
        travel.stop()


@pytest.fixture(scope="module")
def api(server: FakeZoomServer) -> Iterator[httpx.Client]:
    token = get_token(server, server.fake.account(0).s2s_app)["access_token"]
    with httpx.Client(base_url=server.api_url,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def pull(api: httpx.Client, url: str, key: str, params: dict[str, Any]) -> list[Any]:
    items: list[Any] = []
    params = dict(params)
    for _ in range(10_000):
        r = api.get(url, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        page = body[key]
        if "page_size" in params:
            assert len(page) <= min(int(params["page_size"]), 300)
        items += page
        if not body["next_page_token"]:
            return items
        params["next_page_token"] = body["next_page_token"]
    raise AssertionError("pagination did not end")


def _cases(server: FakeZoomServer) -> list[tuple[str, str, dict[str, str], list[Any]]]:
    acc = server.fake.account(0)
    end = server.fake.anchor
    rng = {"from": (end - dt.timedelta(days=8)).isoformat(), "to": end.isoformat()}
    meetings = acc.meetings(rng["from"], rng["to"])
    big = max(meetings, key=lambda m: m["participants_count"])
    group = acc.groups()[0]["id"]
    # The busiest host: more than one meeting in the window, whatever the day's data holds.
    hosts = [m["user_email"] for m in meetings]
    host = max(set(hosts), key=hosts.count)
    return [
        *[("/users", "users", {"status": s}, acc.all_users(s))
          for s in ("active", "inactive", "pending")],
        (f"/groups/{group}/members", "members", {}, acc.group_members(group)),
        ("/roles/2/members", "members", {}, acc.role_members("2")),
        ("/report/activities", "activity_logs", rng, acc.events(rng["from"], rng["to"])),
        ("/report/users", "users", {**rng, "type": "inactive"},
         acc.host_usage(rng["from"], rng["to"], "inactive")),
        (f"/report/users/{host}/meetings", "meetings", rng,
         acc.meetings(rng["from"], rng["to"], user=host)),
        (f"/report/meetings/{quote(quote(big['uuid'], safe=''), safe='')}/participants",
         "participants", {}, acc.participants(big["uuid"])),
        ("/report/operationlogs", "operation_logs", rng,
         acc.operation_logs(rng["from"], rng["to"])),
    ]


@pytest.mark.parametrize("size", [1, 30, 300])
def test_every_item_comes_exactly_once(server: FakeZoomServer, api: httpx.Client, size: int
                                       ) -> None:
    for url, key, params, truth in _cases(server):
        got = pull(api, url, key, {**params, "page_size": str(size)})
        assert got == truth, url
        assert len(truth) > 1, url


def test_page_size_defaults_to_30_and_is_capped_at_300(api: httpx.Client,
                                                       server: FakeZoomServer) -> None:
    body = api.get("/users").json()
    assert body["page_size"] == 30
    assert len(body["users"]) == 30
    end = server.fake.anchor
    rng = {"from": (end - dt.timedelta(days=8)).isoformat(), "to": end.isoformat()}
    body = api.get("/report/activities", params={**rng, "page_size": 1000}).json()
    assert body["page_size"] == 300
    assert len(body["activity_logs"]) == 300


def test_last_page_has_an_empty_next_page_token(api: httpx.Client) -> None:
    body = api.get("/users", params={"page_size": 300}).json()
    assert body["next_page_token"] == ""
    assert body["total_records"] == len(body["users"])


def test_expired_page_token_is_code_300(server: FakeZoomServer, api: httpx.Client) -> None:
    token = api.get("/users", params={"page_size": 5}).json()["next_page_token"]
    server.fake.advance(899)
    assert api.get("/users", params={"page_size": 5, "next_page_token": token}).status_code == 200
    server.fake.advance(2)
    r = api.get("/users", params={"page_size": 5, "next_page_token": token})
    assert r.status_code == 400
    assert r.json()["code"] == 300


def test_page_token_is_bound_to_its_query(api: httpx.Client) -> None:
    token = api.get("/users", params={"status": "active", "page_size": 5}).json()[
        "next_page_token"]
    r = api.get("/users", params={"status": "inactive", "page_size": 5, "next_page_token": token})
    assert (r.status_code, r.json()["code"]) == (400, 300)
    r = api.get("/users", params={"next_page_token": "IAfJX3jsOLW7w3dokmFl84zOa0MAVGyMEB2"})
    assert (r.status_code, r.json()["code"]) == (400, 300)


def test_pages_are_counted_in_stats(server: FakeZoomServer, api: httpx.Client) -> None:
    server.fake.reset_stats()
    pull(api, "/users", "users", {"page_size": 10})
    stats = server.fake.stats()
    ep = stats["accounts"][server.fake.account(0).id]["by_endpoint"]["GET /users"]
    assert ep["pages"] == ep["requests"] >= 2
    assert ep["items"] == len(server.fake.account(0).all_users("active"))
