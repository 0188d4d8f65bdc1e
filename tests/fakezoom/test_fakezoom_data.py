"""Determinism, scale and the mutation overlay of the generated data."""

from __future__ import annotations

import calendar
import datetime as dt

import httpx
import pytest

from fakezoom.config import AccountSpec, AppSpec, FakeZoomConfig
from fakezoom.core import FakeZoom
from fakezoom.server import FakeZoomServer
from fakezoom.testing import api_client, small_config


def _snapshot(fake: FakeZoom) -> dict[str, object]:
    acc = fake.account(0)
    first = acc.data.first_day
    return {
        "account": acc.id,
        "apps": [a.credentials() for a in acc.apps],
        "users": acc.all_users(),
        "groups": acc.groups(),
        "roles": acc.roles(),
        "events": acc.events(first, fake.anchor),
        "meetings": acc.meetings(first, fake.anchor),
    }


def test_same_seed_same_data_and_another_seed_other_data() -> None:
    cfg = {"anchor_date": "2030-03-15"}
    a = _snapshot(FakeZoom(small_config(seed=9, **cfg)))
    b = _snapshot(FakeZoom(small_config(seed=9, **cfg)))
    c = _snapshot(FakeZoom(small_config(seed=10, **cfg)))
    assert a == b
    assert a["users"] != c["users"]
    assert a["account"] != c["account"]


@pytest.mark.usefixtures("pinned_clock")
def test_generated_history_is_plausible() -> None:
    fake = FakeZoom(small_config())
    acc = fake.account(0)
    last = fake.anchor - dt.timedelta(days=1)
    users = acc.all_users()
    assert {u["status"] for u in users} == {"active", "inactive", "pending"}
    assert {u["type"] for u in users} <= {1, 2, 99}
    emails = {u["email"] for u in users}
    events = acc.events(last - dt.timedelta(days=9), last)
    assert events
    assert all(e["email"] in emails for e in events)
    assert all(e["time"].endswith("Z") for e in events)
    assert [e["time"] for e in events] == sorted((e["time"] for e in events), reverse=True)
    pending = {u["email"] for u in users if u["status"] == "pending"}
    assert not pending & {e["email"] for e in events}
    daily = acc.daily(last.year, last.month)
    # The month of yesterday ends today, or at its own last day when today is the 1st.
    month_end = last.replace(day=calendar.monthrange(last.year, last.month)[1])
    assert daily[-1]["date"] == min(fake.clock.today(), month_end).isoformat()
    month = acc.meetings(last.replace(day=1), last)
    assert month
    assert sum(d["meetings"] for d in daily) == len(month)


def test_a_100k_user_account_with_a_million_events_starts_and_serves() -> None:
    spec = AccountSpec(users=100_000, days=10, events_per_user_per_day=1.2,
                       meetings_per_host_per_day=0.01, apps=[AppSpec()])
    fake = FakeZoom(FakeZoomConfig(accounts=[spec], anchor_date="2030-03-15"))
    acc = fake.account(0)
    assert acc.data.count_events(dt.date(2030, 3, 1), dt.date(2030, 3, 31)) > 1_000_000
    page = acc.data.events_slice(dt.date(2030, 3, 1), dt.date(2030, 3, 31), 999_000, 300)
    assert len(page) == 300
    last = acc.data.users_with_status("active")[-1]
    user = acc.user(acc.user_id(last))
    assert acc.user(user["email"])["id"] == user["id"]


def test_mutations_change_what_the_api_returns(fakezoom_server: FakeZoomServer) -> None:
    fake = fakezoom_server.fake
    acc = fake.account(0)
    api = api_client(fakezoom_server, acc.s2s_app)

    def ids(status: str) -> set[str]:
        return {u["id"] for u in api.get("/users", params={"status": status,
                                                           "page_size": 300}).json()["users"]}

    active = sorted(ids("active"))
    added = acc.add_user(first_name="Nia", last_name="New", email="nia@example.org",
                         group_ids=[acc.groups()[0]["id"]])
    assert added["id"] in ids("active")
    assert api.get("/users/nia@example.org").json()["id"] == added["id"]

    acc.rename_user(active[3], "Renamed", "Person")
    got = api.get(f"/users/{active[3]}").json()
    assert (got["first_name"], got["last_name"], got["display_name"]) == (
        "Renamed", "Person", "Renamed Person")

    acc.deactivate_user(active[4])
    assert active[4] not in ids("active")
    assert active[4] in ids("inactive")

    acc.delete_user(active[5])
    assert active[5] not in ids("active") | ids("inactive") | ids("pending")
    assert api.get(f"/users/{active[5]}").json()["code"] == 1001

    g_from, g_to = acc.groups()[0]["id"], acc.groups()[1]["id"]
    mover = acc.group_members(g_from)[0]["id"]
    acc.move_user_group(mover, g_from, g_to)
    members_to = api.get(f"/groups/{g_to}/members", params={"page_size": 300}).json()
    members_from = api.get(f"/groups/{g_from}/members", params={"page_size": 300}).json()
    assert mover in {m["id"] for m in members_to["members"]}
    assert mover not in {m["id"] for m in members_from["members"]}
    assert api.get(f"/users/{mover}").json()["group_ids"].count(g_to) == 1
    assert [u["id"] for u in acc.all_users("active")] == sorted(
        ids("active"), key=[u["id"] for u in acc.all_users("active")].index)


def test_mutations_through_the_admin_endpoints(fakezoom_server: FakeZoomServer) -> None:
    base = f"{fakezoom_server.base_url}/_fake/accounts/0/users"
    acc = fakezoom_server.fake.account(0)
    user = httpx.post(base, json={"first_name": "Ada", "last_name": "Admin"}).json()
    assert acc.user(user["id"])["first_name"] == "Ada"
    httpx.post(f"{base}/{user['id']}/rename", json={"first_name": "Bea", "last_name": "B"})
    assert acc.user(user["id"])["first_name"] == "Bea"
    httpx.post(f"{base}/{user['id']}/deactivate")
    assert acc.user(user["id"])["status"] == "inactive"
    group = acc.groups()[2]["id"]
    httpx.post(f"{base}/{user['id']}/move_group", json={"to_group": group})
    assert user["id"] in {m["id"] for m in acc.group_members(group)}
    assert httpx.delete(f"{base}/{user['id']}").status_code == 204
    assert user["id"] not in {u["id"] for u in acc.all_users()}
    clock = httpx.post(f"{fakezoom_server.base_url}/_fake/clock", json={"advance": 120}).json()
    assert clock["frozen"] is True


def test_the_fast_time_helpers_give_what_datetime_and_calendar_give() -> None:
    # iso and day_start run once per served event; they were datetime's and calendar's calls.
    import random

    from fakezoom.data import day_start, iso

    rnd = random.Random(5)
    for ts in [0, 86399, 86400, 951782400, 4102444799,
               *(rnd.randint(0, 4102444800) for _ in range(20000))]:
        want = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert iso(ts) == want
        assert iso(ts + 0.999) == want
    day = dt.date(1970, 1, 1)
    while day < dt.date(2101, 1, 1):
        assert day_start(day) == calendar.timegm(day.timetuple())
        day += dt.timedelta(days=1)
