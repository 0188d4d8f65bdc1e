"""Insights per account and per identity, and access-review candidates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.api.helpers import World
from tests.api.seed import NOW


def _alice_days() -> int:
    event_days = {(NOW - timedelta(days=d, hours=h)).astimezone(UTC).date()
                  for h, d in enumerate((1, 1, 5, 30))}
    event_days.add((NOW - timedelta(days=1)).date())
    return len(event_days | {(NOW - timedelta(days=10)).date(), (NOW - timedelta(days=20)).date()})


def test_an_account_insight_counts_activity_against_the_tenant_average(world: World) -> None:
    alice = world.seed_a.users["u-alice"]
    body = world.client.get(f"/v1/insights/accounts/{alice}", headers=world.a.headers).json()
    assert body["identity_id"] == str(world.seed_a.identity_id)
    activity = body["activity"]
    assert activity["window_days"] == 90
    assert datetime.fromisoformat(activity["last_activity_at"]) == NOW - timedelta(days=1)
    assert datetime.fromisoformat(activity["zoom_last_login_at"]) == NOW - timedelta(days=1)
    assert activity["sign_ins"] == 4
    # Four sign-ins in the window over three live accounts (alice, bob, carol).
    assert activity["tenant_average_sign_ins"] == pytest.approx(4 / 3, abs=1e-3)
    assert activity["sign_ins_vs_average"] == pytest.approx(3.0, abs=1e-2)
    assert activity["days_active"] == _alice_days()
    assert (activity["meetings_hosted"], activity["meetings_attended"],
            activity["meeting_minutes"]) == (1, 1, 35)


def test_an_idle_account_has_no_recent_figures_but_keeps_its_last_activity(world: World) -> None:
    bob = world.seed_a.users["u-bob"]
    activity = world.client.get(f"/v1/insights/accounts/{bob}",
                                headers=world.a.headers).json()["activity"]
    assert (activity["sign_ins"], activity["days_active"]) == (0, 0)
    assert activity["sign_ins_vs_average"] == 0
    assert datetime.fromisoformat(activity["last_activity_at"]) == NOW - timedelta(days=170)
    wide = world.client.get(f"/v1/insights/accounts/{bob}?window_days=180",
                            headers=world.a.headers).json()["activity"]
    assert wide["sign_ins"] == 1


def test_an_identity_insight_covers_its_correlated_accounts(world: World) -> None:
    body = world.client.get(f"/v1/insights/identities/{world.seed_a.identity_id}",
                            headers=world.a.headers).json()
    assert [a["zoom_id"] for a in body["accounts"]] == ["u-alice"]
    assert body["activity"]["sign_ins"] == 4
    assert body["activity"]["days_active"] == _alice_days()


def test_accounts_without_activity_in_n_days_are_review_candidates(world: World) -> None:
    def candidates(days: int) -> list[str]:
        response = world.client.get(f"/v1/insights/inactive-accounts?days={days}",
                                    headers=world.a.headers)
        assert response.status_code == 200
        return [c["account"]["zoom_id"] for c in response.json()["items"]]

    # Deleted accounts are not candidates: they are already gone from Zoom.
    assert candidates(90) == ["u-bob", "u-carol"]
    assert candidates(180) == ["u-carol"]
    assert candidates(2) == ["u-bob", "u-carol"]
    assert candidates(1) == ["u-alice", "u-bob", "u-carol"]
    body = world.client.get("/v1/insights/inactive-accounts?days=90",
                            headers=world.a.headers).json()
    bob = body["items"][0]
    assert datetime.fromisoformat(bob["last_activity_at"]) == NOW - timedelta(days=170)
    assert bob["identity_id"] is None


def test_days_must_be_within_bounds(world: World) -> None:
    for days in (0, 3651, -5):
        response = world.client.get(f"/v1/insights/inactive-accounts?days={days}",
                                    headers=world.a.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "days"
