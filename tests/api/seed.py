"""Rows the worker would write (Zoom directory, activity), inserted directly for read tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from worker.db import session_scope
from worker.models import (
    AccountCorrelation,
    ActivityEvent,
    Identity,
    Meeting,
    MeetingParticipant,
    SyncRun,
    UserDailySummary,
    ZoomGroup,
    ZoomGroupMember,
    ZoomRole,
    ZoomRoleMember,
    ZoomUser,
)

NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Seeded:
    tenant_id: uuid.UUID
    source_id: uuid.UUID
    users: dict[str, int] = field(default_factory=dict)  # zoom_id -> account id
    group_id: int = 0
    role_id: int = 0
    identity_id: uuid.UUID | None = None
    meeting_id: int = 0
    run_id: uuid.UUID | None = None
    child_run_ids: list[uuid.UUID] = field(default_factory=list)


def seed_directory_and_activity(tenant_id: str, source_id: str) -> Seeded:
    """Three accounts: alice (active, correlated, in group 'eng', admin role, signs in often),
    bob (active, in 'eng', member role, one old sign-in 200 days ago), carol (inactive, never
    active, deleted_at unset) and dave (deleted)."""
    t, s = uuid.UUID(tenant_id), uuid.UUID(source_id)
    out = Seeded(tenant_id=t, source_id=s)
    with session_scope() as db:
        users = [
            ZoomUser(tenant_id=t, source_id=s, zoom_id="u-alice", email="Alice@Acme.example",
                     first_name="Alice", status="active", role_id="r-admin",
                     group_ids=["g-eng"], employee_unique_id="E1",
                     last_login_time=NOW - timedelta(days=1)),
            ZoomUser(tenant_id=t, source_id=s, zoom_id="u-bob", email="bob@acme.example",
                     first_name="Bob", status="active", role_id="r-member",
                     group_ids=["g-eng"], last_login_time=NOW - timedelta(days=200)),
            ZoomUser(tenant_id=t, source_id=s, zoom_id="u-carol", email="carol@acme.example",
                     first_name="Carol", status="inactive", role_id="r-member"),
            ZoomUser(tenant_id=t, source_id=s, zoom_id="u-dave", email="dave@acme.example",
                     status="active", role_id="r-member", deleted_at=NOW - timedelta(days=3)),
        ]
        db.add_all(users)
        group = ZoomGroup(tenant_id=t, source_id=s, zoom_id="g-eng", name="Engineering",
                          total_members=2)
        admin_role = ZoomRole(tenant_id=t, source_id=s, zoom_id="r-admin", name="Admin",
                              total_members=1)
        member_role = ZoomRole(tenant_id=t, source_id=s, zoom_id="r-member", name="Member",
                               total_members=3)
        db.add_all([group, admin_role, member_role])
        db.add_all([
            ZoomGroupMember(tenant_id=t, source_id=s, group_zoom_id="g-eng",
                            user_zoom_id="u-alice", email="alice@acme.example"),
            ZoomGroupMember(tenant_id=t, source_id=s, group_zoom_id="g-eng",
                            user_zoom_id="u-bob", email="bob@acme.example"),
            ZoomRoleMember(tenant_id=t, source_id=s, role_zoom_id="r-admin",
                           user_zoom_id="u-alice", email="alice@acme.example"),
        ])
        identity = Identity(tenant_id=t, external_id="emp-1", email="alice@acme.example",
                            email_normalized="alice@acme.example", display_name="Alice A")
        db.add(identity)
        db.flush()
        db.add(AccountCorrelation(tenant_id=t, source_id=s, user_zoom_id="u-alice",
                                  identity_id=identity.id, method="email"))
        # Alice: sign-ins on 3 distinct days in the window, plus one meeting attended.
        for i, days_ago in enumerate((1, 1, 5, 30)):
            db.add(ActivityEvent(tenant_id=t, source_id=s, event_key=f"a{i}",
                                 email="alice@acme.example",
                                 time=NOW - timedelta(days=days_ago, hours=i), type="Sign in",
                                 client_type="mac"))
        db.add(ActivityEvent(tenant_id=t, source_id=s, event_key="a-out",
                             email="alice@acme.example", time=NOW - timedelta(days=1),
                             type="Sign out"))
        # Bob: one sign-in long ago (outside 90 days, so an access-review candidate).
        db.add(ActivityEvent(tenant_id=t, source_id=s, event_key="b0", email="bob@acme.example",
                             time=NOW - timedelta(days=170), type="Sign in"))
        meeting = Meeting(tenant_id=t, source_id=s, uuid="m-uuid-1==", meeting_id="123",
                          host_zoom_id="u-alice", host_email="alice@acme.example",
                          topic="Standup", start_time=NOW - timedelta(days=10),
                          end_time=NOW - timedelta(days=10) + timedelta(minutes=30),
                          duration=30, participants_count=2, participants_status="fetched")
        old_meeting = Meeting(tenant_id=t, source_id=s, uuid="m-uuid-0==", meeting_id="99",
                              host_zoom_id="u-bob", host_email="bob@acme.example",
                              topic="Old", start_time=NOW - timedelta(days=120))
        db.add_all([meeting, old_meeting])
        db.add_all([
            MeetingParticipant(tenant_id=t, source_id=s, participant_key="p1",
                               meeting_uuid="m-uuid-1==", user_id="u-alice", name="Alice",
                               user_email="alice@acme.example",
                               join_time=NOW - timedelta(days=10),
                               leave_time=NOW - timedelta(days=10) + timedelta(minutes=30),
                               duration=1800),
            MeetingParticipant(tenant_id=t, source_id=s, participant_key="p2",
                               meeting_uuid="m-uuid-1==", name="Guest",
                               user_email="guest@elsewhere.example",
                               join_time=NOW - timedelta(days=10), duration=600),
        ])
        db.add(UserDailySummary(tenant_id=t, source_id=s, email="alice@acme.example",
                                day=(NOW - timedelta(days=10)).date(), meetings_hosted=1,
                                meetings_attended=1, meeting_minutes=30,
                                last_activity_at=NOW - timedelta(days=10)))
        # A summary day with sign-ins only in the summary (events not kept): still active.
        db.add(UserDailySummary(tenant_id=t, source_id=s, email="alice@acme.example",
                                day=(NOW - timedelta(days=20)).date(), sign_ins=0,
                                meeting_minutes=5, last_activity_at=NOW - timedelta(days=20)))
        run = SyncRun(tenant_id=t, source_id=s, kind="activity", trigger="api", status="running")
        db.add(run)
        db.flush()
        for month in (2, 1):
            child = SyncRun(tenant_id=t, source_id=s, kind="activity", stream="signins",
                            trigger="api", status="succeeded", parent_id=run.id,
                            window_start=NOW - timedelta(days=30 * month),
                            window_end=NOW - timedelta(days=30 * (month - 1)), pages=2, seen=7)
            db.add(child)
            db.flush()
            out.child_run_ids.append(child.id)
        db.flush()
        out.users = {u.zoom_id: u.id or 0 for u in users}
        out.group_id = group.id or 0
        out.role_id = admin_role.id or 0
        out.identity_id = identity.id
        out.meeting_id = meeting.id or 0
        out.run_id = run.id
    return out


def day(days_ago: int) -> date:
    return (NOW - timedelta(days=days_ago)).date()
