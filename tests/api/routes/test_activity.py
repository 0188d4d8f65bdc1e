"""Activity events: newest first, filtered by account or email, type and time."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from tests.api.helpers import World
from tests.api.seed import NOW


def _get(world: World, query: str) -> dict:  # type: ignore[type-arg]
    response = world.client.get(f"/v1/activity{query}", headers=world.a.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_events_are_newest_first_and_paged(world: World) -> None:
    everything = _get(world, "?limit=500")["items"]
    times = [e["time"] for e in everything]
    assert times == sorted(times, reverse=True)
    assert len(times) == 6
    first = _get(world, "?limit=4")
    second = _get(world, f"?limit=4&cursor={first['next_cursor']}")
    assert [e["id"] for e in first["items"] + second["items"]] == [e["id"] for e in everything]


def test_events_are_filtered_by_account_email_type_and_time(world: World) -> None:
    alice = world.seed_a.users["u-alice"]
    assert len(_get(world, f"?account_id={alice}")["items"]) == 5
    assert len(_get(world, "?email=BOB@acme.example")["items"]) == 1
    assert len(_get(world, f"?email=alice@acme.example&type={quote('Sign out')}")["items"]) == 1
    since = quote((NOW - timedelta(days=7)).isoformat())
    until = quote((NOW - timedelta(days=2)).isoformat())
    assert len(_get(world, f"?since={since}&until={until}")["items"]) == 1


def test_an_inverted_time_range_is_422(world: World) -> None:
    response = world.client.get("/v1/activity?since=2026-02-01T00:00:00Z&until=2026-01-01",
                                headers=world.a.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "until"


def test_a_nul_in_a_filter_is_422_not_a_database_error(world: World) -> None:
    response = world.client.get("/v1/activity?email=a%00b", headers=world.a.headers)
    assert response.status_code == 422
