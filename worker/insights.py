"""Activity Insights figures, computed from the rows the worker keeps.

Sources of activity for a Zoom account (a source and a lower-cased email):
``UserDailySummary`` (per-day figures the worker derives), ``ActivityEvent`` (sign-ins and
sign-outs) and ``MeetingParticipant`` (meetings attended). Days are UTC days. The summaries
and the events describe the same sign-ins; the larger count wins, so a summary that lags its
events (or events pruned after summarising) never hides sign-ins.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, or_
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from worker.db import tenant_query
from worker.models import (
    ActivityEvent,
    MeetingParticipant,
    Source,
    UserDailySummary,
    ZoomUser,
)
from worker.reports.activity import (
    WINDOW_DAYS,
    account_source,
    activity_instants,
    feeding_sources,
    tenant_average_sign_ins,
)
from worker.zoom.items import SIGN_IN_TYPES

Account = tuple[uuid.UUID, str]  # (source_id, lower-cased email)


@dataclass(frozen=True)
class ActivityFigures:
    """What the API's ActivityFigures schema shows (its fields describe each figure)."""

    window_days: int
    last_activity_at: datetime | None
    zoom_last_login_at: datetime | None
    days_active: int
    sign_ins: int
    tenant_average_sign_ins: float | None
    sign_ins_vs_average: float | None
    meetings_hosted: int
    meetings_attended: int
    meeting_minutes: int


def account_key(user: ZoomUser) -> Account:
    return user.source_id, user.email.lower()


def _match(model: type, email_column: str, accounts: Sequence[Account]) -> ColumnElement[bool]:
    return or_(*[
        and_(model.source_id == source_id, getattr(model, email_column) == email)  # type: ignore[attr-defined]
        for source_id, email in accounts
    ])


def _day(value: datetime) -> date:
    return value.astimezone(UTC).date()


def _latest(*values: datetime | None) -> datetime | None:
    present = [v.astimezone(UTC) for v in values if v is not None]
    return max(present) if present else None


def figures(
    session: Session,
    tenant_id: uuid.UUID,
    users: Sequence[ZoomUser],
    now: datetime,
    window_days: int = WINDOW_DAYS,
) -> ActivityFigures:
    accounts = sorted({account_key(u) for u in users if u.email})
    since = now - timedelta(days=window_days)
    since_day = _day(since)
    zoom_login = _latest(*(u.last_login_time for u in users))
    average = tenant_average_sign_ins(session, tenant_id, since)
    if not accounts:
        return ActivityFigures(
            window_days=window_days, last_activity_at=None, zoom_last_login_at=zoom_login,
            days_active=0, sign_ins=0, tenant_average_sign_ins=average,
            sign_ins_vs_average=None, meetings_hosted=0, meetings_attended=0, meeting_minutes=0,
        )

    days: set[date] = set()
    summary_sign_ins = hosted = attended = minutes = 0
    for row in session.exec(
        select(UserDailySummary).where(
            col(UserDailySummary.tenant_id) == tenant_id,
            _match(UserDailySummary, "email", accounts),
            col(UserDailySummary.day) >= since_day,
        )
    ):
        summary_sign_ins += row.sign_ins
        hosted += row.meetings_hosted
        attended += row.meetings_attended
        minutes += row.meeting_minutes
        if row.sign_ins or row.meetings_hosted or row.meetings_attended or row.meeting_minutes \
                or row.last_activity_at is not None:
            days.add(row.day)

    event_sign_ins = 0
    for time, kind in session.exec(
        select(ActivityEvent.time, ActivityEvent.type).where(
            col(ActivityEvent.tenant_id) == tenant_id,
            _match(ActivityEvent, "email", accounts),
            col(ActivityEvent.time) >= since,
        )
    ):
        days.add(_day(time))
        if kind.strip().lower() in SIGN_IN_TYPES:  # is_sign_in, in Python
            event_sign_ins += 1

    for joined in session.exec(
        select(MeetingParticipant.join_time).where(
            col(MeetingParticipant.tenant_id) == tenant_id,
            _match(MeetingParticipant, "user_email", accounts),
            col(MeetingParticipant.join_time) >= since,
        )
    ):
        if joined is not None:
            days.add(_day(joined))

    last = last_activity(session, tenant_id, accounts).get("all")
    sign_ins = max(summary_sign_ins, event_sign_ins)
    ratio = round(sign_ins / average, 3) if average else None
    return ActivityFigures(
        window_days=window_days,
        last_activity_at=last,
        zoom_last_login_at=zoom_login,
        days_active=len({d for d in days if d >= since_day}),
        sign_ins=sign_ins,
        tenant_average_sign_ins=average,
        sign_ins_vs_average=ratio,
        meetings_hosted=hosted,
        meetings_attended=attended,
        meeting_minutes=minutes,
    )


def last_activity(
    session: Session, tenant_id: uuid.UUID, accounts: Sequence[Account]
) -> dict[Account | str, datetime | None]:
    """Latest activity per account (and under "all", over all of them), all time: the latest
    of ``activity_instants`` (Zoom's own last_login_time is shown beside it, not in it)."""
    out: dict[Account | str, datetime | None] = {}
    if not accounts:
        return out
    for i in activity_instants():
        sid = account_source(i.model)
        query = (
            select(sid, i.email, func.max(i.at))
            .join(Source, col(Source.id) == i.model.source_id)
            .where(col(i.model.tenant_id) == tenant_id,
                   or_(*[and_(sid == source_id, i.email == email)
                         for source_id, email in accounts]))
            .group_by(sid, i.email)
        )
        for source_id, email, latest in session.exec(query):
            key = (source_id, email)
            out[key] = _latest(out.get(key), latest)
            out["all"] = _latest(out.get("all"), latest)
    return out


def inactive_condition(tenant_id: uuid.UUID, cutoff: datetime) -> ColumnElement[bool]:
    """True for a ZoomUser row with no activity at or after the ``cutoff`` instant (to the
    microsecond: an account last active one second before the cut-off is idle)."""
    email = func.lower(ZoomUser.email)
    recent = [
        exists().where(
            col(i.model.tenant_id) == tenant_id,
            col(i.model.source_id).in_(feeding_sources(ZoomUser.source_id)),
            i.email == email,
            i.at >= cutoff,
        )
        for i in activity_instants()
    ]
    recent_login = and_(col(ZoomUser.last_login_time).is_not(None),
                        col(ZoomUser.last_login_time) >= cutoff)
    return ~or_(*recent, recent_login)


def inactive_accounts_query(
    tenant_id: uuid.UUID, cutoff: datetime, source_id: uuid.UUID | None = None
) -> SelectOfScalar[ZoomUser]:
    """Access-review candidates: the tenant's Zoom accounts (not deleted) with no activity at
    or after ``cutoff``, optionally of one source. The caller orders and pages."""
    query = tenant_query(ZoomUser, tenant_id).where(
        col(ZoomUser.deleted_at).is_(None), inactive_condition(tenant_id, cutoff)
    )
    if source_id is not None:
        query = query.where(ZoomUser.source_id == source_id)
    return query
