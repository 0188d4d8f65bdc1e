"""Activity Insights per identity and per Zoom account, and access-review candidates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import and_, or_
from sqlmodel import Session, col

from api.deps import SessionDep, TenantDep, get_or_404
from api.errors import PROBLEM_RESPONSES
from api.pagination import keyset_page
from api.routes.accounts import SourceFilter, check_source, correlations
from api.schemas.activity import (
    AccountInsight,
    AccountRef,
    ActivityFigures,
    IdentityInsight,
    InactiveAccount,
)
from api.schemas.common import MAX_BIGINT, Limit, Page, public
from worker.db import tenant_query
from worker.insights import account_key, inactive_accounts_query, last_activity
from worker.insights import figures as _figures
from worker.models import AccountCorrelation, Identity, ZoomUser, utcnow
from worker.reports.activity import WINDOW_DAYS

router = APIRouter(prefix="/v1/insights", tags=["insights"], responses=PROBLEM_RESPONSES)

WindowDays = Annotated[int, Query(ge=1, le=180, description="Window for the counts (days)")]


def figures(session: Session, tenant_id: uuid.UUID, users: Sequence[ZoomUser], now: datetime,
            window_days: int) -> ActivityFigures:
    return ActivityFigures(**asdict(_figures(session, tenant_id, users, now, window_days)))


@router.get("/accounts/{account_id}", response_model=AccountInsight)
def account_insight(
    account_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)],
    tenant_id: TenantDep,
    session: SessionDep,
    window_days: WindowDays = WINDOW_DAYS,
) -> AccountInsight:
    """Last activity, days active, sign-ins against the tenant average, for one Zoom account."""
    user = get_or_404(session, ZoomUser, tenant_id, account_id, "account")
    link = correlations(session, tenant_id, [user]).get((user.source_id, user.zoom_id))
    return AccountInsight(
        account=public(AccountRef, user),
        identity_id=link.identity_id if link else None,
        activity=figures(session, tenant_id, [user], utcnow(), window_days),
    )


@router.get("/identities/{identity_id}", response_model=IdentityInsight)
def identity_insight(
    identity_id: uuid.UUID,
    tenant_id: TenantDep,
    session: SessionDep,
    window_days: WindowDays = WINDOW_DAYS,
) -> IdentityInsight:
    """The same figures for an identity, over all its correlated Zoom accounts."""
    identity = get_or_404(session, Identity, tenant_id, identity_id, "identity")
    links = session.exec(
        tenant_query(AccountCorrelation, tenant_id).where(
            col(AccountCorrelation.identity_id) == identity.id
        )
    ).all()
    users: list[ZoomUser] = []
    if links:
        users = list(session.exec(
            tenant_query(ZoomUser, tenant_id).where(or_(*[
                and_(col(ZoomUser.source_id) == link.source_id,
                     col(ZoomUser.zoom_id) == link.user_zoom_id)
                for link in links
            ])).order_by(col(ZoomUser.id))
        ))
    return IdentityInsight(
        identity_id=identity.id,
        external_id=identity.external_id,
        email=identity.email,
        accounts=[public(AccountRef, u) for u in users],
        activity=figures(session, tenant_id, users, utcnow(), window_days),
    )


@router.get("/inactive-accounts", response_model=Page[InactiveAccount])
def inactive_accounts(
    tenant_id: TenantDep,
    session: SessionDep,
    days: Annotated[int, Query(ge=1, le=3650, description="No activity in this many days")] = 90,
    source_id: SourceFilter = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[InactiveAccount]:
    """Access-review candidates: Zoom accounts (not deleted) with no activity in N days."""
    check_source(session, tenant_id, source_id)
    cutoff = utcnow() - timedelta(days=days)
    query = inactive_accounts_query(tenant_id, cutoff, source_id)
    page: list[ZoomUser]
    page, next_cursor = keyset_page(session, query, [col(ZoomUser.id)], cursor, limit,
                                    lambda u: (u.id,))
    latest = last_activity(session, tenant_id, sorted({account_key(u) for u in page if u.email}))
    links = correlations(session, tenant_id, page)
    items = []
    for user in page:
        link = links.get((user.source_id, user.zoom_id))
        items.append(InactiveAccount(
            account=public(AccountRef, user),
            identity_id=link.identity_id if link else None,
            last_activity_at=latest.get(account_key(user)),
            zoom_last_login_at=user.last_login_time,
            zoom_created_at=user.zoom_created_at,
        ))
    return Page[InactiveAccount](items=items, next_cursor=next_cursor)
