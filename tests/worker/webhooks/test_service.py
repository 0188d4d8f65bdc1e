"""Webhook processing against Postgres and fakezoom: pushed sign-ins and the pull end as one
row per event, summaries move at once, duplicates change nothing, directory events respect a
newer pull, and the pull counts what the push missed."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from sqlmodel import col, select

from fakezoom.server import FakeZoomServer
from tests.factories import add_app_source as add_source
from tests.factories import make_source, make_tenant
from tests.webhook_signing import event_body, sign_in_object, signed_headers
from worker.activity.planner import plan_activity
from worker.activity.service import event_key, run_chunk
from worker.aggregation.service import run_aggregation
from worker.db import session_scope
from worker.kit.crypto import decrypt_json, encrypt_json
from worker.models import (
    ActivityEvent,
    RunKind,
    RunStatus,
    Source,
    SyncRun,
    UserDailySummary,
    WebhookEvent,
    ZoomGroupMember,
    ZoomUser,
)
from worker.webhooks import inbox, intake, service

SECRET = "wh-test-secret"


def with_secret(source_id: uuid.UUID, secret: str = SECRET) -> None:
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        creds = decrypt_json(source.credentials_ciphertext)
        source.credentials_ciphertext = encrypt_json({**creds, "webhook_secret_token": secret})


def source_and_meetings(zoom: FakeZoomServer, count: int = 1
                        ) -> tuple[uuid.UUID, list[dict[str, Any]]]:
    """A source of the fake's first account with the Secret Token set, and `count` of
    yesterday's meetings that have participants."""
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    with_secret(source_id)
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    found = [m for m in account.meetings(yesterday, yesterday) if account.participants(m["uuid"])]
    assert len(found) >= count
    return source_id, found[:count]


def deliver(source_id: uuid.UUID, body: bytes) -> uuid.UUID | None:
    """What the endpoint does with a signed body; None when it was a repeat."""
    headers = signed_headers(SECRET, body)
    answer = intake.receive(str(source_id), body, headers["x-zm-request-timestamp"],
                           headers["x-zm-signature"])
    return answer.event_id if answer.new else None


def push(source_id: uuid.UUID, event: str, obj: dict[str, Any], **kw: Any) -> str:
    event_id = deliver(source_id, event_body(event, obj, **kw))
    assert event_id is not None
    return service.process(event_id)


def rows(source_id: uuid.UUID) -> list[ActivityEvent]:
    with session_scope() as session:
        return list(session.exec(select(ActivityEvent).where(
            ActivityEvent.source_id == source_id)))


def summary(source_id: uuid.UUID, email: str, day: dt.date) -> UserDailySummary | None:
    with session_scope() as session:
        return session.exec(select(UserDailySummary).where(
            UserDailySummary.source_id == source_id, UserDailySummary.email == email,
            UserDailySummary.day == day)).first()


def signin_sync(source_id: uuid.UUID, start: dt.date, end: dt.date) -> SyncRun:
    """One sign-ins chunk over [start, end] (the daily pull of that stream)."""
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        plan = SyncRun(tenant_id=source.tenant_id, source_id=source_id, kind=RunKind.ACTIVITY,
                       window_start=dt.datetime.combine(start, dt.time(), dt.UTC),
                       window_end=dt.datetime.combine(end + dt.timedelta(days=1), dt.time(),
                                                      dt.UTC),
                       details={"streams": ["signins"]})
        session.add(plan)
    plan_activity(plan.id, enqueue=False)
    with session_scope() as session:
        chunks = list(session.exec(select(SyncRun).where(SyncRun.parent_id == plan.id,
                                                         SyncRun.stream == "signins")))
    assert chunks
    for chunk in chunks:
        run_chunk(chunk.id, enqueue=False)
    with session_scope() as session:
        return session.get_one(SyncRun, chunks[-1].id)


def test_a_pushed_sign_in_shows_in_the_summaries_at_once_and_the_pull_merges_it(
    zoom: FakeZoomServer
) -> None:
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    with_secret(source_id)
    user = account.all_users("active")[3]
    event = account.sign_in(user["id"], client_type="Win", ip_address="198.51.100.7")
    when = dt.datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    outcome = push(source_id, "user.signed_in", sign_in_object(
        user["email"], event["time"], user_id=user["id"], client_type="win",
        version=event["version"]))
    assert outcome == "sign-in stored"
    (pushed,) = rows(source_id)
    assert pushed.ip_address is None
    assert pushed.time == when
    day = summary(source_id, user["email"].lower(), when.date())
    assert day is not None
    assert day.sign_ins == 1
    assert day.last_activity_at == when

    run = signin_sync(source_id, when.date(), when.date())
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    merged = [r for r in rows(source_id) if r.email == user["email"].lower() and r.time == when]
    assert len(merged) == 1
    assert merged[0].event_key == event_key(source_id, event)  # the pull's key now
    assert merged[0].ip_address == "198.51.100.7"
    assert merged[0].client_type == "Win"
    assert run.details["missed_by_webhook"] == 0
    # Again: nothing changes.
    before = {(r.event_key, r.ip_address) for r in rows(source_id)}
    signin_sync(source_id, when.date(), when.date())
    assert {(r.event_key, r.ip_address) for r in rows(source_id)} == before


def test_a_push_after_the_pull_adds_nothing_and_duplicates_change_nothing(
    zoom: FakeZoomServer
) -> None:
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    with_secret(source_id)
    users = account.all_users("active")
    early = account.sign_in(users[0]["id"])
    # The push of `early` is late: its webhook was retried after the pull ran.
    first = deliver(source_id, event_body("user.signed_in", sign_in_object(
        users[1]["email"], early["time"], user_id=users[1]["id"])))  # opens the inbox
    assert first is not None
    assert service.process(first) == "sign-in stored"
    day = dt.date.fromisoformat(early["time"][:10])
    signin_sync(source_id, day, day)
    count = len(rows(source_id))
    late = sign_in_object(early["email"], early["time"], user_id=users[0]["id"],
                          client_type=early["client_type"].upper(), version=early["version"])
    assert push(source_id, "user.signed_in", late) == "sign-in already pulled"
    assert len(rows(source_id)) == count

    body = event_body("user.signed_out", sign_in_object(users[2]["email"], early["time"],
                                                        user_id=users[2]["id"]))
    event_id = deliver(source_id, body)
    assert event_id is not None
    assert service.process(event_id) == "sign-in stored"
    assert service.process(event_id) == "noop: already processed"  # a redelivered task
    assert deliver(source_id, body) is None  # Zoom's retry of the same bytes
    resent = json.dumps(json.loads(body), indent=2).encode()  # same event, other bytes
    again = deliver(source_id, resent)
    assert again is not None
    assert service.process(again) == "sign-in already stored"
    assert len(rows(source_id)) == count + 1


def test_the_pull_counts_the_sign_ins_the_push_missed(zoom: FakeZoomServer) -> None:
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    with_secret(source_id)
    users = account.all_users("active")
    events = [account.sign_in(u["id"], client_type="Mac") for u in users[:6]]
    for e, u in zip(events[:4], users, strict=False):  # the last two are never pushed
        push(source_id, "user.signed_in", sign_in_object(e["email"], e["time"],
                                                         user_id=u["id"], client_type="mac"))
    day = dt.date.fromisoformat(events[0]["time"][:10])
    run = signin_sync(source_id, day, day)
    assert run.details["missed_by_webhook"] == 2
    stored = {r.event_key for r in rows(source_id)}
    assert stored == {event_key(source_id, e) for e in account.events(day, day)}


def test_user_events_update_the_directory_unless_a_newer_pull_saw_the_row(
    zoom: FakeZoomServer
) -> None:
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    with_secret(source_id)
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        agg = SyncRun(tenant_id=source.tenant_id, source_id=source_id,
                      kind=RunKind.AGGREGATION)
        session.add(agg)
    run_aggregation(agg.id, enqueue=False)
    user = account.all_users("active")[5]

    def stored() -> ZoomUser:
        with session_scope() as session:
            return session.exec(select(ZoomUser).where(ZoomUser.source_id == source_id,
                                                       ZoomUser.zoom_id == user["id"])).one()

    pulled_at = stored().last_seen_at
    stale_ts = int(pulled_at.timestamp() * 1000) - 60_000
    assert push(source_id, "user.updated", {"id": user["id"], "first_name": "Stale"},
                event_ts=stale_ts).startswith("older than")
    assert stored().first_name == user["first_name"]

    fresh_ts = int(pulled_at.timestamp() * 1000) + 1000
    assert push(source_id, "user.updated", {"id": user["id"], "first_name": "Fresh"},
                event_ts=fresh_ts).startswith("user updated")
    row = stored()
    assert row.first_name == "Fresh"
    assert row.content_hash == ""
    assert push(source_id, "user.deactivated", {"id": user["id"], "email": user["email"]},
                event_ts=fresh_ts + 1000).startswith("user updated")
    assert stored().status == "inactive"
    # An older event arriving late (reordered) does not undo the newer one.
    assert push(source_id, "user.activated", {"id": user["id"], "email": user["email"]},
                event_ts=fresh_ts + 500).startswith("older than")
    assert stored().status == "inactive"

    assert push(source_id, "user.deleted", {"id": user["id"], "email": user["email"]},
                event_ts=fresh_ts + 2000) == "user marked deleted (user.deleted)"
    assert stored().deleted_at is not None
    with session_scope() as session:
        memberships = session.exec(select(ZoomGroupMember).where(
            ZoomGroupMember.source_id == source_id,
            ZoomGroupMember.user_zoom_id == user["id"])).all()
        assert memberships
        assert all(m.deleted_at is not None for m in memberships)

    created = push(source_id, "user.created",
                   {"id": "new-user-1", "email": "new@acme.example", "first_name": "New",
                    "last_name": "User", "type": 1}, event_ts=fresh_ts)
    assert created == "user stored (user.created)"
    unknown = push(source_id, "user.updated", {"id": "never-seen", "first_name": "X"})
    assert unknown == "unknown user; left to the next pull"


@pytest.mark.usefixtures("clean_db")
def test_events_of_one_source_never_touch_another_tenants_rows() -> None:
    with session_scope() as session:
        a = make_source(session, make_tenant(session))
        b = make_source(session, make_tenant(session))
        ids = (a.id, b.id)
    for source_id in ids:
        with_secret(source_id)
    push(ids[0], "user.signed_in", sign_in_object("eve@acme.example", "2026-12-01T09:00:00Z"))
    assert len(rows(ids[0])) == 1
    assert rows(ids[1]) == []
    with session_scope() as session:
        events = session.exec(select(WebhookEvent).order_by(col(WebhookEvent.received_at))).all()
        assert [e.source_id for e in events] == [ids[0]]
        assert events[0].tenant_id == session.get_one(Source, ids[0]).tenant_id


def test_meeting_ended_stores_the_meeting_and_fetches_its_participants_once(
    zoom: FakeZoomServer
) -> None:
    from tests.worker.helpers import stored_participant_keys
    from worker.activity.service import participant_key
    from worker.models import Meeting
    from worker.webhooks import meetings

    account = zoom.fake.account(0)
    source_id, (report,) = source_and_meetings(zoom)
    obj = {"uuid": report["uuid"], "id": report["id"], "host_id": report.get("host_id", "h"),
           "topic": report.get("topic", ""), "start_time": report["start_time"],
           "end_time": report["end_time"], "duration": report.get("duration")}
    event_id = deliver(source_id, event_body("meeting.ended", obj))
    assert event_id is not None
    assert service.process(event_id) == "meeting stored; participants report queued"
    outcome = meetings.fetch_participants(event_id)
    assert outcome.startswith("participants fetched")
    expected = {participant_key(source_id, report["uuid"], p)
                for p in account.participants(report["uuid"])}
    assert stored_participant_keys(source_id) == expected
    with session_scope() as session:
        meeting = session.exec(select(Meeting).where(Meeting.source_id == source_id)).one()
        assert meeting.participants_status == "fetched"
    assert meetings.fetch_participants(event_id) == "noop"  # a redelivery pays no Heavy call


@pytest.mark.usefixtures("clean_db")
def test_the_sweep_sends_what_the_api_could_not_and_gives_up_after_its_attempts(
    redis_client: Any
) -> None:
    from tests.broker import broker_messages
    from worker.models import utcnow

    with session_scope() as session:
        source = make_source(session, make_tenant(session))
        source_id = source.id
    with_secret(source_id)
    fresh = deliver(source_id, event_body("user.signed_in", sign_in_object(
        "a@acme.example", "2026-12-01T09:00:00Z")))
    assert inbox.sweep() == 0  # within the API's own grace: its sender may still send it
    later = utcnow() + inbox.UNSENT_GRACE + dt.timedelta(seconds=1)
    assert inbox.sweep(later) == 1
    (message,) = broker_messages(redis_client, "webhooks")
    assert message["args"] == [[str(fresh)]]
    assert inbox.sweep(later) == 0  # sent, and not yet due again
    # Sent MAX_ATTEMPTS times and never processed: failed, left to the daily pull.
    with session_scope() as session:
        row = session.get_one(WebhookEvent, fresh)
        row.attempts = inbox.MAX_ATTEMPTS
    much_later = later + inbox.RESEND_AFTER + dt.timedelta(seconds=1)
    assert inbox.sweep(much_later) == 0
    with session_scope() as session:
        assert session.get_one(WebhookEvent, fresh).status == "failed"
    inbox.sweep(utcnow() + inbox.RETENTION - dt.timedelta(minutes=1))
    with session_scope() as session:
        assert session.get(WebhookEvent, fresh) is not None  # kept for RETENTION
    inbox.sweep(utcnow() + inbox.RETENTION + dt.timedelta(minutes=1))
    with session_scope() as session:
        assert session.get(WebhookEvent, fresh) is None


def test_a_window_without_events_of_a_source_with_webhooks_is_still_reconciled(
    zoom: FakeZoomServer
) -> None:
    """An empty window's pages skip the ON CONFLICT path (an open COPY), except for a source
    whose webhooks report: its pages are checked for pushed twins and counted as usual."""
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    with_secret(source_id)
    user = account.all_users("active")[0]
    event = account.sign_in(user["id"])
    push(source_id, "user.signed_in", sign_in_object(user["email"], event["time"],
                                                     user_id=user["id"]))
    earlier = dt.date.fromisoformat(event["time"][:10]) - dt.timedelta(days=3)
    assert account.events(earlier, earlier)
    run = signin_sync(source_id, earlier, earlier)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.details["missed_by_webhook"] == 0  # reconciled: nothing after the first push
    assert {r.event_key for r in rows(source_id) if r.time.date() == earlier} == \
        {event_key(source_id, e) for e in account.events(earlier, earlier)}
