"""Activity events (sign-ins and sign-outs), newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import col

from api.deps import SessionDep, TenantDep, get_or_404
from api.errors import PROBLEM_RESPONSES, Unprocessable
from api.pagination import keyset_page
from api.routes.accounts import SourceFilter, check_source
from api.schemas.activity import ActivityEventPublic
from api.schemas.common import MAX_BIGINT, Limit, Page, Str64, Str320, UtcDatetime, public
from worker.db import tenant_query
from worker.models import ActivityEvent, ZoomUser

router = APIRouter(prefix="/v1/activity", tags=["activity"], responses=PROBLEM_RESPONSES)


def check_range(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and until < since:
        raise Unprocessable("must not be before since", field="until", location="query")


@router.get("", response_model=Page[ActivityEventPublic])
def list_activity(
    tenant_id: TenantDep,
    session: SessionDep,
    source_id: SourceFilter = None,
    account_id: Annotated[int | None, Query(ge=1, le=MAX_BIGINT,
                                            description="Zoom account (its email)")] = None,
    email: Annotated[Str320 | None, Query(description="Exact, case-insensitive")] = None,
    type: Annotated[Str64 | None, Query(description="e.g. 'Sign in', 'Sign out'")] = None,
    since: Annotated[UtcDatetime | None, Query(description="Inclusive")] = None,
    until: Annotated[UtcDatetime | None, Query(description="Exclusive")] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[ActivityEventPublic]:
    """List sign-in/sign-out events, newest first (filters: account or email, type, time)."""
    check_source(session, tenant_id, source_id)
    check_range(since, until)
    query = tenant_query(ActivityEvent, tenant_id)
    if source_id is not None:
        query = query.where(ActivityEvent.source_id == source_id)
    if account_id is not None:
        user = get_or_404(session, ZoomUser, tenant_id, account_id, "account")
        query = query.where(ActivityEvent.source_id == user.source_id,
                            ActivityEvent.email == user.email.lower())
    if email:
        query = query.where(ActivityEvent.email == email.lower())
    if type:
        query = query.where(ActivityEvent.type == type)
    if since is not None:
        query = query.where(col(ActivityEvent.time) >= since)
    if until is not None:
        query = query.where(col(ActivityEvent.time) < until)
    page: list[ActivityEvent]
    page, next_cursor = keyset_page(
        session, query, [col(ActivityEvent.time), col(ActivityEvent.id)], cursor, limit,
        lambda e: (e.time, e.id), kinds=[datetime, int], descending=True)
    return Page[ActivityEventPublic](items=[public(ActivityEventPublic, e) for e in page],
                                     next_cursor=next_cursor)
