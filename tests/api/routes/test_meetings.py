"""Meetings and participants."""

from __future__ import annotations

from tests.api.helpers import World


def test_meetings_are_latest_first_and_filtered_by_host(world: World) -> None:
    items = world.client.get("/v1/meetings", headers=world.a.headers).json()["items"]
    assert [m["topic"] for m in items] == ["Standup", "Old"]
    alice = world.seed_a.users["u-alice"]
    hosted = world.client.get(f"/v1/meetings?host_account_id={alice}",
                              headers=world.a.headers).json()["items"]
    assert [m["topic"] for m in hosted] == ["Standup"]
    by_email = world.client.get("/v1/meetings?host_email=BOB@acme.example&limit=1",
                                headers=world.a.headers).json()
    assert [m["topic"] for m in by_email["items"]] == ["Old"]
    first = world.client.get("/v1/meetings?limit=1", headers=world.a.headers).json()
    second = world.client.get(f"/v1/meetings?limit=1&cursor={first['next_cursor']}",
                              headers=world.a.headers).json()
    assert [m["topic"] for m in second["items"]] == ["Old"]


def test_a_meeting_lists_its_participants(world: World) -> None:
    meeting = world.client.get(f"/v1/meetings/{world.seed_a.meeting_id}",
                               headers=world.a.headers).json()
    assert meeting["participants_count"] == 2
    participants = world.client.get(meeting["links"]["participants"],
                                    headers=world.a.headers).json()["items"]
    assert [p["user_email"] for p in participants] == [
        "alice@acme.example", "guest@elsewhere.example",
    ]
