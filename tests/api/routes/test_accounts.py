"""Zoom accounts: filters, cursor pagination, detail with groups, roles and identity."""

from __future__ import annotations

import pytest

from tests.api.helpers import World


def _emails(world: World, query: str) -> list[str]:
    response = world.client.get(f"/v1/accounts{query}", headers=world.a.headers)
    assert response.status_code == 200, response.text
    return [a["email"] for a in response.json()["items"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["Alice@Acme.example", "bob@acme.example", "carol@acme.example"]),
        ("?include_deleted=true", ["Alice@Acme.example", "bob@acme.example",
                                   "carol@acme.example", "dave@acme.example"]),
        ("?status=inactive", ["carol@acme.example"]),
        ("?correlated=true", ["Alice@Acme.example"]),
        ("?correlated=false", ["bob@acme.example", "carol@acme.example"]),
        ("?group=g-eng", ["Alice@Acme.example", "bob@acme.example"]),
        ("?role=r-member", ["bob@acme.example", "carol@acme.example"]),
        ("?email=ALICE@acme.EXAMPLE", ["Alice@Acme.example"]),
        ("?group=g-eng&correlated=false", ["bob@acme.example"]),
        ("?group=nope", []),
    ],
)
def test_accounts_are_filtered(world: World, query: str, expected: list[str]) -> None:
    assert _emails(world, query) == expected


def test_accounts_are_paged_with_a_cursor(world: World) -> None:
    first = world.client.get("/v1/accounts?limit=2", headers=world.a.headers).json()
    second = world.client.get(f"/v1/accounts?limit=2&cursor={first['next_cursor']}",
                              headers=world.a.headers).json()
    assert len(first["items"]) == 2
    assert len(second["items"]) == 1
    assert second["next_cursor"] is None


def test_an_account_shows_its_groups_roles_and_identity(world: World) -> None:
    alice = world.seed_a.users["u-alice"]
    body = world.client.get(f"/v1/accounts/{alice}", headers=world.a.headers).json()
    assert body["identity_id"] == str(world.seed_a.identity_id)
    assert body["correlation_method"] == "email"
    assert [g["name"] for g in body["groups"]] == ["Engineering"]
    assert [r["zoom_id"] for r in body["roles"]] == ["r-admin"]


@pytest.mark.parametrize("bad", ["0", "-1", "9223372036854775808", "abc"])
def test_out_of_range_account_ids_are_422_not_a_database_error(world: World, bad: str) -> None:
    assert world.client.get(f"/v1/accounts/{bad}", headers=world.a.headers).status_code == 422


def test_a_missing_account_is_404(world: World) -> None:
    response = world.client.get("/v1/accounts/9223372036854775807", headers=world.a.headers)
    assert response.status_code == 404
