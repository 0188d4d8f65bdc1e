"""Meetings and their participants."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import func
from sqlmodel import col

from api.deps import SessionDep, TenantDep, get_or_404
from api.errors import PROBLEM_RESPONSES
from api.routes.accounts import SourceFilter, check_source
from api.routes.activity import check_range
from api.schemas.activity import MeetingPublic, ParticipantPublic
from api.schemas.common import (
    MAX_BIGINT,
    Limit,
    Page,
    Str320,
    UtcDatetime,
    decode_cursor,
    encode_cursor,
)
from worker.db import tenant_query
from worker.models import Meeting, MeetingParticipant, ZoomUser

router = APIRouter(prefix="/v1/meetings", tags=["meetings"], responses=PROBLEM_RESPONSES)

MeetingId = Annotated[int, Path(ge=1, le=MAX_BIGINT)]
# Meetings without a start time sort last, as if they started at the epoch.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_public(m: Meeting) -> MeetingPublic:
    assert m.id is not None
    return MeetingPublic(
        id=m.id, source_id=m.source_id, uuid=m.uuid, meeting_id=m.meeting_id,
        host_zoom_id=m.host_zoom_id, host_email=m.host_email, topic=m.topic, type=m.type,
        start_time=m.start_time, end_time=m.end_time, duration=m.duration,
        total_minutes=m.total_minutes, participants_count=m.participants_count,
        participants_status=m.participants_status,
        links={"self": f"/v1/meetings/{m.id}", "participants": f"/v1/meetings/{m.id}/participants"},
    )


@router.get("", response_model=Page[MeetingPublic])
def list_meetings(
    tenant_id: TenantDep,
    session: SessionDep,
    source_id: SourceFilter = None,
    host_account_id: Annotated[int | None, Query(ge=1, le=MAX_BIGINT,
                                                 description="Hosted by this Zoom account")] = None,
    host_email: Annotated[Str320 | None, Query(description="Exact, case-insensitive")] = None,
    since: Annotated[UtcDatetime | None, Query(description="Started at or after")] = None,
    until: Annotated[UtcDatetime | None, Query(description="Started before")] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[MeetingPublic]:
    """List meetings, latest start first."""
    check_source(session, tenant_id, source_id)
    check_range(since, until)
    start = func.coalesce(Meeting.start_time, _EPOCH)
    query = tenant_query(Meeting, tenant_id)
    if source_id is not None:
        query = query.where(Meeting.source_id == source_id)
    if host_account_id is not None:
        host = get_or_404(session, ZoomUser, tenant_id, host_account_id, "account")
        query = query.where(Meeting.source_id == host.source_id,
                            Meeting.host_zoom_id == host.zoom_id)
    if host_email:
        query = query.where(func.lower(Meeting.host_email) == host_email.lower())
    if since is not None:
        query = query.where(col(Meeting.start_time) >= since)
    if until is not None:
        query = query.where(col(Meeting.start_time) < until)
    after = decode_cursor(cursor, datetime, int)
    if after is not None:
        time, last_id = after
        query = query.where((start < time) | ((start == time) & (col(Meeting.id) < last_id)))
    rows = list(session.exec(query.order_by(start.desc(), col(Meeting.id).desc())
                             .limit(limit + 1)))
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(page[-1].start_time or _EPOCH, page[-1].id)
    return Page[MeetingPublic](items=[to_public(m) for m in page], next_cursor=next_cursor)


@router.get("/{meeting_id}", response_model=MeetingPublic)
def get_meeting(meeting_id: MeetingId, tenant_id: TenantDep, session: SessionDep) -> MeetingPublic:
    """Read a meeting."""
    return to_public(get_or_404(session, Meeting, tenant_id, meeting_id, "meeting"))


@router.get("/{meeting_id}/participants", response_model=Page[ParticipantPublic])
def list_participants(
    meeting_id: MeetingId,
    tenant_id: TenantDep,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[Limit, Query()] = 200,
) -> Page[ParticipantPublic]:
    """List a meeting's participants."""
    meeting = get_or_404(session, Meeting, tenant_id, meeting_id, "meeting")
    query = tenant_query(MeetingParticipant, tenant_id).where(
        MeetingParticipant.source_id == meeting.source_id,
        MeetingParticipant.meeting_uuid == meeting.uuid,
    )
    after = decode_cursor(cursor, int)
    if after is not None:
        query = query.where(col(MeetingParticipant.id) > after[0])
    rows = list(session.exec(query.order_by(col(MeetingParticipant.id)).limit(limit + 1)))
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
    return Page[ParticipantPublic](
        items=[
            ParticipantPublic(
                id=p.id or 0, participant_id=p.participant_id, user_id=p.user_id, name=p.name,
                user_email=p.user_email, join_time=p.join_time, leave_time=p.leave_time,
                duration=p.duration, status=p.status,
            )
            for p in page
        ],
        next_cursor=next_cursor,
    )
