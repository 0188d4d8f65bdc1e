"""Insights per account and per identity, and access-review candidates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import TenantCtx, World, create_source
from tests.api.seed import NOW
from worker.db import session_scope
from worker.models import (
    ActivityEvent,
    Meeting,
    MeetingParticipant,
    Source,
    UserDailySummary,
    ZoomUser,
)


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
    # His last activity is the meeting he hosted 120 days ago (his sign-in was at 170).
    assert datetime.fromisoformat(activity["last_activity_at"]) == NOW - timedelta(days=120)
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
    assert datetime.fromisoformat(bob["last_activity_at"]) == NOW - timedelta(days=120)
    assert bob["identity_id"] is None


def test_days_must_be_within_bounds(world: World) -> None:
    for days in (0, 3651, -5):
        response = world.client.get(f"/v1/insights/inactive-accounts?days={days}",
                                    headers=world.a.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "days"


def test_the_idle_cut_off_is_an_instant_not_the_start_of_its_day(
    client: TestClient, tenant: TenantCtx
) -> None:
    """days=7: activity one second before the cut-off is idle, one minute after it is not,
    whichever table the activity is in (the old query rounded the cut-off down to midnight
    and counted the first account active whenever its summary day was the cut-off's)."""
    source = uuid.UUID(create_source(client, tenant)["id"])
    t = uuid.UUID(tenant.id)
    t0 = datetime.now(UTC)
    cutoff = t0 - timedelta(days=7)
    before, after = cutoff - timedelta(seconds=1), cutoff + timedelta(minutes=1)
    with session_scope() as db:
        def user(zoom_id: str) -> None:
            db.add(ZoomUser(tenant_id=t, source_id=source, zoom_id=zoom_id,
                            email=f"{zoom_id}@acme.example", status="active"))

        # Signed in a second too early, with the summary the worker writes for that day.
        user("early")
        db.add(ActivityEvent(tenant_id=t, source_id=source, event_key="e1",
                             email="early@acme.example", time=before, type="Sign in"))
        db.add(UserDailySummary(tenant_id=t, source_id=source, email="early@acme.example",
                                day=before.date(), sign_ins=1, last_activity_at=before))
        user("signin")
        db.add(ActivityEvent(tenant_id=t, source_id=source, event_key="e2",
                             email="signin@acme.example", time=after, type="Sign in"))
        # Only an attendee: joined before the cut-off, left after it.
        user("attendee")
        db.add(MeetingParticipant(tenant_id=t, source_id=source, participant_key="p1",
                                  meeting_uuid="m1", user_email="attendee@acme.example",
                                  join_time=before - timedelta(hours=1), leave_time=after))
        # Only a host, of a meeting with no summary yet.
        user("host")
        db.add(Meeting(tenant_id=t, source_id=source, uuid="m2", host_email="host@acme.example",
                       start_time=before - timedelta(hours=1), end_time=after))
        # Signed in through a split set-up's activity-only source.
        feeder = Source(tenant_id=t, name="zoom-activity", aggregation_enabled=False,
                        governance_source_id=source)
        db.add(feeder)
        db.flush()
        user("split")
        db.add(ActivityEvent(tenant_id=t, source_id=feeder.id, event_key="e3",
                             email="split@acme.example", time=after, type="Sign in"))
        # Only Zoom's own last_login_time, a second too early.
        db.add(ZoomUser(tenant_id=t, source_id=source, zoom_id="zoomlogin",
                        email="zoomlogin@acme.example", status="active", last_login_time=before))
    response = client.get("/v1/insights/inactive-accounts?days=7", headers=tenant.headers)
    assert response.status_code == 200, response.text
    # The request ran within a minute of t0, so its cut-off lies between `before` and `after`.
    assert datetime.now(UTC) - t0 < timedelta(minutes=1)
    idle = sorted(c["account"]["zoom_id"] for c in response.json()["items"])
    assert idle == ["early", "zoomlogin"]
    early = next(c for c in response.json()["items"] if c["account"]["zoom_id"] == "early")
    assert datetime.fromisoformat(early["last_activity_at"]) == before
