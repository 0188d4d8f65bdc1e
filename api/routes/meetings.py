"""Meetings and their participants."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import func
from sqlmodel import col

from api.deps import SessionDep, TenantDep, get_or_404
from api.errors import PROBLEM_RESPONSES
from api.pagination import keyset_page
from api.routes.accounts import SourceFilter, check_source
from api.routes.activity import check_range
from api.schemas.activity import MeetingPublic, ParticipantPublic
from api.schemas.common import MAX_BIGINT, Limit, Page, Str320, UtcDatetime, public
from worker.db import tenant_query
from worker.models import Meeting, MeetingParticipant, ZoomUser

router = APIRouter(prefix="/v1/meetings", tags=["meetings"], responses=PROBLEM_RESPONSES)

MeetingId = Annotated[int, Path(ge=1, le=MAX_BIGINT)]
# Meetings without a start time sort last, as if they started at the epoch.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_public(m: Meeting) -> MeetingPublic:
    return public(MeetingPublic, m, links={"self": f"/v1/meetings/{m.id}",
                                          "participants": f"/v1/meetings/{m.id}/participants"})


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
    page: list[Meeting]
    page, next_cursor = keyset_page(
        session, query, [start, col(Meeting.id)], cursor, limit,
        lambda m: (m.start_time or _EPOCH, m.id), kinds=[datetime, int], descending=True)
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
    page: list[MeetingParticipant]
    page, next_cursor = keyset_page(session, query, [col(MeetingParticipant.id)], cursor, limit,
                                    lambda p: (p.id,))
    return Page[ParticipantPublic](items=[public(ParticipantPublic, p) for p in page],
                                   next_cursor=next_cursor)
