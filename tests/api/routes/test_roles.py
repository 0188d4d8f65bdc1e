"""Roles share the groups' shape; see test_groups for members."""

from __future__ import annotations

from tests.api.helpers import World


def test_a_role_is_read_by_id(world: World) -> None:
    role = world.client.get(f"/v1/roles/{world.seed_a.role_id}", headers=world.a.headers).json()
    assert (role["zoom_id"], role["name"]) == ("r-admin", "Admin")
    assert role["links"]["members"] == f"/v1/roles/{world.seed_a.role_id}/members"


def test_a_missing_role_is_404(world: World) -> None:
    assert world.client.get("/v1/roles/999999", headers=world.a.headers).status_code == 404
