"""Zoom groups and roles with their members."""

from __future__ import annotations

from tests.api.helpers import World


def test_groups_are_listed_and_read_with_members(world: World) -> None:
    groups = world.client.get("/v1/groups", headers=world.a.headers).json()["items"]
    assert [g["name"] for g in groups] == ["Engineering"]
    group = world.client.get(groups[0]["links"]["self"], headers=world.a.headers).json()
    assert group["total_members"] == 2
    members = world.client.get(group["links"]["members"], headers=world.a.headers).json()
    assert [m["zoom_id"] for m in members["items"]] == ["u-alice", "u-bob"]
    assert members["items"][0]["account_id"] == world.seed_a.users["u-alice"]
    paged = world.client.get(f"{group['links']['members']}?limit=1", headers=world.a.headers)
    assert paged.json()["next_cursor"] is not None


def test_roles_are_listed_and_read_with_members(world: World) -> None:
    roles = world.client.get(f"/v1/roles?source_id={world.source_a['id']}",
                             headers=world.a.headers).json()["items"]
    assert sorted(r["name"] for r in roles) == ["Admin", "Member"]
    admin = world.client.get(f"/v1/roles/{world.seed_a.role_id}/members",
                             headers=world.a.headers).json()
    assert [m["email"] for m in admin["items"]] == ["alice@acme.example"]
