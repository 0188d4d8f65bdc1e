"""Per-user daily summaries, recomputed from the stored activity rows for the days a chunk touched.

Recomputing (rather than incrementing) makes a re-run chunk a no-op and lets late data correct a
day. Definitions, per lower-cased email and UTC day:
- sign_ins: "Sign in" events that day;
- meetings_hosted: meetings whose host email is the user, by start day;
- meetings_attended: distinct meetings the user joined that day (hosts who joined included);
- meeting_minutes: the user's participant durations that day, summed, in whole minutes;
- last_activity_at: the latest sign-in/out, participant leave (or join) or hosted meeting end.
Users without an email (guests) have no summary. `details` links the Zoom account (of the
governance source in a split set-up) and its correlated identity when known.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, case, cast, delete, func, text
from sqlmodel import Session, col, select

from worker.kit.upsert import upsert
from worker.models import (
    AccountCorrelation,
    ActivityEvent,
    Meeting,
    MeetingParticipant,
    Source,
    UserDailySummary,
    ZoomUser,
    utcnow,
)
from worker.models.base import as_utc


def _day(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        # date() of a timestamptz follows the session time zone; summaries are UTC days.
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def _lock_source(session: Session, source_id: uuid.UUID) -> None:
    """Serialise summary rewrites of one source: two chunks (sign-ins and meetings) finishing
    together would each compute a day without the other's last page."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"summary:{source_id}".encode()).digest()[:8],
                             "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    x, y = as_utc(a), as_utc(b)
    if x is None:
        return y
    if y is None:
        return x
    return max(x, y)


def recompute(session: Session, source: Source, days: Iterable[date]) -> int:
    """Rewrite the summaries of `source` for `days`; returns rows written. Caller commits."""
    days = sorted(set(days))
    if not days:
        return 0
    _lock_source(session, source.id)
    dialect = session.get_bind().dialect.name
    start = datetime.combine(days[0], datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    wanted = set(days)
    acc: dict[tuple[str, date], dict[str, Any]] = {}

    def slot(email: str, day: Any) -> dict[str, Any] | None:
        day = day if isinstance(day, date) else date.fromisoformat(str(day))
        if not email or day not in wanted:
            return None
        return acc.setdefault((email, day), {"sign_ins": 0, "meetings_hosted": 0,
                                             "meetings_attended": 0, "seconds": 0,
                                             "last": None})

    ev_day = _day(ActivityEvent.time, dialect)
    for email, day, sign_ins, last in session.exec(
        select(ActivityEvent.email, ev_day,
               func.sum(case((col(ActivityEvent.type) == "Sign in", 1), else_=0)),
               func.max(ActivityEvent.time))
        .where(ActivityEvent.source_id == source.id, col(ActivityEvent.time) >= start,
               col(ActivityEvent.time) < end)
        .group_by(ActivityEvent.email, ev_day)
    ).all():
        s = slot(email.lower(), day)
        if s is not None:
            s["sign_ins"] += int(sign_ins or 0)
            s["last"] = _later(s["last"], last)

    m_day = _day(Meeting.start_time, dialect)
    host = func.lower(Meeting.host_email)
    for email, day, hosted, hosted_end in session.exec(
        select(host, m_day, func.count(), func.max(Meeting.end_time))
        .where(Meeting.source_id == source.id, col(Meeting.start_time) >= start,
               col(Meeting.start_time) < end)
        .group_by(host, m_day)
    ).all():
        s = slot(email or "", day)
        if s is not None:
            s["meetings_hosted"] += int(hosted)
            s["last"] = _later(s["last"], hosted_end)

    p_day = _day(MeetingParticipant.join_time, dialect)
    who = func.lower(MeetingParticipant.user_email)
    participant_stmt: Any = (
        select(  # type: ignore[call-overload]
            who, p_day, func.count(func.distinct(MeetingParticipant.meeting_uuid)),
               func.sum(func.coalesce(MeetingParticipant.duration, 0)),
               func.max(MeetingParticipant.leave_time), func.max(MeetingParticipant.join_time))
        .where(MeetingParticipant.source_id == source.id,
               col(MeetingParticipant.join_time) >= start, col(MeetingParticipant.join_time) < end)
        .group_by(who, p_day)
    )
    for email, day, attended, seconds, last_leave, last_join in session.exec(
        participant_stmt
    ).all():
        s = slot(email or "", day)
        if s is not None:
            s["meetings_attended"] += int(attended)
            s["seconds"] += int(seconds or 0)
            s["last"] = _later(s["last"], last_leave or last_join)

    links = _account_links(session, source, {email for email, _ in acc})
    now = utcnow()
    rows = [
        {
            "tenant_id": source.tenant_id, "source_id": source.id, "email": email, "day": day,
            "sign_ins": v["sign_ins"], "meetings_hosted": v["meetings_hosted"],
            "meetings_attended": v["meetings_attended"], "meeting_minutes": v["seconds"] // 60,
            "last_activity_at": v["last"], "updated_at": now,
            "details": links.get(email, {}),
        }
        for (email, day), v in acc.items()
    ]
    # Days recomputed from scratch: a user with no activity left that day loses the row.
    session.execute(
        delete(UserDailySummary).where(
            col(UserDailySummary.source_id) == source.id, col(UserDailySummary.day).in_(days)
        )
    )
    upsert(session, UserDailySummary, rows, conflict=("source_id", "email", "day"))
    return len(rows)


def _account_links(session: Session, source: Source, emails: set[str]) -> dict[str, dict[str, str]]:
    if not emails:
        return {}
    from worker.correlation.service import accounts_source_id

    target = accounts_source_id(source)
    users = session.exec(
        select(func.lower(ZoomUser.email), ZoomUser.zoom_id).where(
            ZoomUser.source_id == target, col(ZoomUser.deleted_at).is_(None))
    ).all()
    by_email = {e: z for e, z in users if e in emails}
    identities = dict(
        session.exec(
            select(AccountCorrelation.user_zoom_id, AccountCorrelation.identity_id).where(
                AccountCorrelation.source_id == target)
        ).all()
    )
    out: dict[str, dict[str, str]] = {}
    for email, zoom_id in by_email.items():
        link = {"user_zoom_id": zoom_id}
        if zoom_id in identities:
            link["identity_id"] = str(identities[zoom_id])
        out[email] = link
    return out
