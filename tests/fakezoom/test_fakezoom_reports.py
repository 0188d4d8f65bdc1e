"""Report windows, meeting UUID encoding, lookups and documented error codes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from fakezoom.config import AccountSpec, AppSpec, FakeZoomConfig
from fakezoom.server import FakeZoomServer
from fakezoom.testing import api_client, running_fakezoom

SCOPES = ["user:read:admin", "group:read:admin", "role:read:admin", "report:read:admin"]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeZoomServer]:
    apps = [AppSpec(kind="s2s", scopes=SCOPES, owner_index=1)]
    cfg = FakeZoomConfig(seed=21, rate_limits_enabled=False, accounts=[
        AccountSpec(users=40, days=20, apps=apps),
        AccountSpec(users=10, days=5, plan="free", apps=apps)])
    with running_fakezoom(cfg) as srv:
        yield srv


def _api(server: FakeZoomServer, account: int = 0) -> httpx.Client:
    return api_client(server, server.fake.account(account).s2s_app)


@pytest.fixture(scope="module")
def api(server: FakeZoomServer) -> Iterator[httpx.Client]:
    with _api(server) as client:
        yield client


def _error(r: httpx.Response) -> tuple[int, int]:
    return r.status_code, r.json()["code"]


def _twice(uuid: str) -> str:
    return quote(quote(uuid, safe=""), safe="")


def test_report_windows_over_a_month_or_older_than_six_months_are_code_300(
    server: FakeZoomServer, api: httpx.Client
) -> None:
    today = server.fake.clock.today()
    cases = [
        {"from": (today - dt.timedelta(days=40)).isoformat(), "to": today.isoformat()},
        {"from": (today - dt.timedelta(days=200)).isoformat(),
         "to": (today - dt.timedelta(days=190)).isoformat()},
        {"from": "2024-13-01", "to": "2024-13-05"},
        {"from": "yesterday", "to": today.isoformat()},
        {"from": today.isoformat(), "to": (today - dt.timedelta(days=2)).isoformat()},
    ]
    for params in cases:
        for url in ("/report/activities", "/report/users", "/report/operationlogs"):
            assert _error(api.get(url, params=params)) == (400, 300), (url, params)
    month = {"from": (today - dt.timedelta(days=30)).isoformat(), "to": today.isoformat()}
    assert api.get("/report/activities", params=month).status_code == 200
    old = today.replace(day=1) - dt.timedelta(days=220)
    r = api.get("/report/daily", params={"year": old.year, "month": old.month})
    assert _error(r) == (400, 300)
    assert _error(api.get("/report/users")) == (400, 300)  # from/to are required


def test_meeting_uuids_needing_double_encoding_work_only_double_encoded(
    server: FakeZoomServer, api: httpx.Client
) -> None:
    acc = server.fake.account(0)
    meetings = acc.meetings(acc.data.first_day, server.fake.anchor)
    slashy = [m for m in meetings if m["uuid"].startswith("/") or "//" in m["uuid"]]
    assert any(m["uuid"].startswith("/") for m in slashy)
    assert any("//" in m["uuid"] for m in slashy)
    for m in slashy[:6]:
        r = api.get(f"/report/meetings/{_twice(m['uuid'])}/participants")
        assert r.status_code == 200, m["uuid"]
        assert r.json()["participants"] == acc.participants(m["uuid"])
        once = api.get(f"/report/meetings/{quote(m['uuid'], safe='')}/participants")
        assert _error(once) == (404, 3001)
    plain = next(m for m in meetings if "/" not in m["uuid"])
    for key in (quote(plain["uuid"], safe=""), _twice(plain["uuid"]), str(plain["id"])):
        assert api.get(f"/report/meetings/{key}/participants").status_code == 200, key


def test_participants_of_unknown_deleted_and_year_old_meetings(
    server: FakeZoomServer, api: httpx.Client
) -> None:
    acc = server.fake.account(0)
    assert _error(api.get("/report/meetings/AAAAAAAAAAAAAAAAAAAAAA==/participants")) == (404, 3001)
    old = acc.old_meeting_uuid()
    assert _error(api.get(f"/report/meetings/{_twice(old)}/participants")) == (400, 12702)
    victim = acc.meetings(acc.data.first_day, server.fake.anchor)[-1]
    acc.delete_meeting(victim["uuid"])
    r = api.get(f"/report/meetings/{_twice(victim['uuid'])}/participants")
    assert _error(r) == (404, 3001)


def test_every_reported_meeting_has_two_or_more_participants(
    server: FakeZoomServer, api: httpx.Client
) -> None:
    acc = server.fake.account(0)
    host = acc.meetings(acc.data.first_day, server.fake.anchor)[0]["user_email"]
    rng = {"from": acc.data.first_day.isoformat(), "to": server.fake.anchor.isoformat(),
           "page_size": 300}
    body = api.get(f"/report/users/{host}/meetings", params=rng).json()
    assert body["meetings"]
    assert all(m["participants_count"] >= 2 for m in body["meetings"])
    joined = api.get(f"/report/users/{host}/meetings", params={**rng, "type": "pastJoined"})
    assert joined.json()["total_records"] >= body["total_records"]


def test_unknown_ids_answer_the_documented_codes(api: httpx.Client) -> None:
    assert _error(api.get("/users/nobody@example.com")) == (404, 1001)
    assert _error(api.get("/users/ABCDEFGHIJKLMNOPQRSTUV")) == (404, 1001)
    assert _error(api.get("/groups/nope/members")) == (404, 4130)
    assert _error(api.get("/roles/nope/members")) == (400, 1034)
    r = api.get("/report/users/nobody@example.com/meetings",
                params={"from": dt.date.today().isoformat(), "to": dt.date.today().isoformat()})
    assert _error(r) == (404, 1001)


def test_me_is_the_app_owner_and_users_resolve_by_id_and_email(
    server: FakeZoomServer, api: httpx.Client
) -> None:
    acc = server.fake.account(0)
    me = api.get("/users/me").json()
    assert me["id"] == acc.user_id(1)
    assert me["account_id"] == acc.id
    assert me["role_name"] == "Admin"
    by_email = api.get(f"/users/{me['email']}").json()
    assert by_email["id"] == me["id"]


def test_pending_users_show_the_call_time_as_created_at(server: FakeZoomServer,
                                                       api: httpx.Client) -> None:
    pending = server.fake.account(0).all_users("pending")[0]
    got = api.get(f"/users/{pending['id']}").json()
    assert got["status"] == "pending"
    called = dt.datetime.fromisoformat(got["created_at"].replace("Z", "+00:00"))
    assert abs(called.timestamp() - server.fake.now()) < 5


def test_paid_only_endpoints_refuse_free_accounts(server: FakeZoomServer) -> None:
    with _api(server, account=1) as free:
        assert free.get("/users").status_code == 200
        assert _error(free.get("/groups")) == (400, 200)
        assert _error(free.get("/report/daily")) == (400, 200)


def test_group_and_role_membership_agree_with_users(server: FakeZoomServer,
                                                    api: httpx.Client) -> None:
    acc = server.fake.account(0)
    users = {u["id"]: u for u in acc.all_users()}
    for g in acc.groups():
        members = acc.group_members(g["id"])
        assert len(members) == g["total_members"]
        assert all(g["id"] in users[m["id"]]["group_ids"] for m in members)
    for role in api.get("/roles").json()["roles"]:
        members = acc.role_members(role["id"])
        assert len(members) == role["total_members"]
        assert all(users[m["id"]]["role_id"] == role["id"] for m in members)
