"""What counts as activity of a Zoom account, in one place for the insights and the review.

Activity of an account (a source and a lower-cased email) comes from ``ActivityEvent``
(sign-ins and sign-outs), ``Meeting`` (hosted), ``MeetingParticipant`` (attended) and
``UserDailySummary`` (per-day figures the worker derives). Days are UTC days.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from worker.models import (
    ActivityEvent,
    Meeting,
    MeetingParticipant,
    Source,
    UserDailySummary,
    ZoomUser,
)
from worker.zoom.items import SIGN_IN_TYPES

WINDOW_DAYS = 90  # days of "days active" and sign-ins, as Activity Insights shows them


def _day(value: datetime) -> Any:
    return value.astimezone(UTC).date()


def is_sign_in(event_type: Any) -> ColumnElement[bool]:
    """The API's one sign-in predicate over ``ActivityEvent.type`` (kept in one function so the
    shared definition of sign-in event types replaces it in one place)."""
    return func.lower(func.trim(event_type)).in_(SIGN_IN_TYPES)


@dataclass(frozen=True)
class Instants:
    """One table's activity instants: which rows, the account they belong to (source and
    lower-cased email) and the instant the account was last seen active in that row."""

    model: Any
    email: Any
    at: Any
    sign_in: ColumnElement[bool] | None = None  # rows that are sign-ins, when the table has any


def activity_instants() -> list[Instants]:
    """Every instant that makes an account active: a sign-in or sign-out, the end (else start)
    of a meeting it hosted, its leaving (else joining) a meeting it attended, and a summary's
    exact ``last_activity_at`` (which outlives pruned events). A summary's *day* is never used
    as an instant: rounding it to midnight counted accounts active until the day was over."""
    return [
        Instants(ActivityEvent, col(ActivityEvent.email), col(ActivityEvent.time),
                 is_sign_in(ActivityEvent.type)),
        Instants(Meeting, col(Meeting.host_email),
                 func.coalesce(Meeting.end_time, Meeting.start_time)),
        Instants(MeetingParticipant, col(MeetingParticipant.user_email),
                 func.coalesce(MeetingParticipant.leave_time, MeetingParticipant.join_time)),
        Instants(UserDailySummary, col(UserDailySummary.email),
                 col(UserDailySummary.last_activity_at)),
    ]


def feeding_sources(account_source_id: Any) -> Any:
    """Sources whose activity belongs to the Zoom accounts of ``account_source_id``: itself and,
    in a split set-up, the activity-only sources governed by it."""
    return select(Source.id).where(
        func.coalesce(Source.governance_source_id, Source.id) == account_source_id
    )


def account_source(model: Any) -> Any:
    """``model.source_id`` mapped to the source whose Zoom accounts its rows belong to (the
    governance source in a split set-up); select it with a join to ``Source`` on the row's."""
    return func.coalesce(Source.governance_source_id, model.source_id)


def tenant_average_sign_ins(
    session: Session, tenant_id: uuid.UUID, since: datetime
) -> float | None:
    """Sign-ins per (non-deleted) Zoom account of the tenant since ``since``."""
    accounts = session.exec(
        select(func.count()).select_from(ZoomUser).where(
            col(ZoomUser.tenant_id) == tenant_id, col(ZoomUser.deleted_at).is_(None)
        )
    ).one()
    if not accounts:
        return None
    events = session.exec(
        select(func.count()).select_from(ActivityEvent).where(
            col(ActivityEvent.tenant_id) == tenant_id,
            col(ActivityEvent.time) >= since,
            is_sign_in(ActivityEvent.type),
        )
    ).one()
    summarised = session.exec(
        select(func.coalesce(func.sum(UserDailySummary.sign_ins), 0)).where(
            col(UserDailySummary.tenant_id) == tenant_id,
            col(UserDailySummary.day) >= _day(since),
        )
    ).one()
    return round(max(int(events), int(summarised)) / int(accounts), 3)
