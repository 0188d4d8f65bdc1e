"""Zoom accounts (users) as aggregated, with filters and their correlation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from sqlalchemy import and_, exists, func, or_
from sqlmodel import Session, col, select

from api.deps import SessionDep, TenantDep, get_or_404
from api.errors import PROBLEM_RESPONSES
from api.pagination import keyset_page
from api.schemas.common import MAX_BIGINT, Limit, Page, Str64, Str320, public
from api.schemas.directory import AccountDetail, AccountPublic, GroupRef
from worker.db import tenant_query
from worker.models import (
    AccountCorrelation,
    Source,
    ZoomGroup,
    ZoomGroupMember,
    ZoomRole,
    ZoomUser,
)

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], responses=PROBLEM_RESPONSES)

AccountId = Annotated[int, Path(ge=1, le=MAX_BIGINT)]
SourceFilter = Annotated[uuid.UUID | None, Query(description="Only this source's rows")]


def check_source(session: Session, tenant_id: uuid.UUID, source_id: uuid.UUID | None) -> None:
    """A filter naming another tenant's source answers 404, like any other id of theirs."""
    if source_id is not None:
        get_or_404(session, Source, tenant_id, source_id, "source")


def correlations(
    session: Session, tenant_id: uuid.UUID, users: Sequence[ZoomUser]
) -> dict[tuple[uuid.UUID, str], AccountCorrelation]:
    if not users:
        return {}
    pairs = [and_(col(AccountCorrelation.source_id) == u.source_id,
                  col(AccountCorrelation.user_zoom_id) == u.zoom_id) for u in users]
    rows = session.exec(tenant_query(AccountCorrelation, tenant_id).where(or_(*pairs))).all()
    return {(r.source_id, r.user_zoom_id): r for r in rows}


def correlation_fields(link: AccountCorrelation | None) -> dict[str, Any]:
    """What an account shows of its correlation (the fields its row does not carry)."""
    return {"identity_id": link.identity_id if link else None,
            "correlation_method": link.method if link else None}


@router.get("", response_model=Page[AccountPublic])
def list_accounts(
    tenant_id: TenantDep,
    session: SessionDep,
    source_id: SourceFilter = None,
    status: Annotated[Str64 | None, Query(description="Zoom status: active, inactive, pending")]
    = None,
    correlated: Annotated[bool | None, Query(description="Has a correlated identity")] = None,
    group: Annotated[Str64 | None, Query(description="Zoom group id")] = None,
    role: Annotated[Str64 | None, Query(description="Zoom role id")] = None,
    email: Annotated[Str320 | None, Query(description="Exact, case-insensitive")] = None,
    include_deleted: Annotated[bool, Query(description="Include accounts gone from Zoom")]
    = False,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[AccountPublic]:
    """List Zoom accounts with filters (status, correlated, group, role, email)."""
    check_source(session, tenant_id, source_id)
    query = tenant_query(ZoomUser, tenant_id)
    if source_id is not None:
        query = query.where(ZoomUser.source_id == source_id)
    if status:
        query = query.where(ZoomUser.status == status)
    if email:
        query = query.where(func.lower(ZoomUser.email) == email.lower())
    if not include_deleted:
        query = query.where(col(ZoomUser.deleted_at).is_(None))
    if role:
        query = query.where(ZoomUser.role_id == role)
    if group:
        query = query.where(
            exists().where(
                col(ZoomGroupMember.source_id) == ZoomUser.source_id,
                col(ZoomGroupMember.user_zoom_id) == ZoomUser.zoom_id,
                col(ZoomGroupMember.group_zoom_id) == group,
                col(ZoomGroupMember.deleted_at).is_(None),
            )
        )
    if correlated is not None:
        linked = exists().where(
            col(AccountCorrelation.source_id) == ZoomUser.source_id,
            col(AccountCorrelation.user_zoom_id) == ZoomUser.zoom_id,
        )
        query = query.where(linked if correlated else ~linked)
    page: list[ZoomUser]
    page, next_cursor = keyset_page(session, query, [col(ZoomUser.id)], cursor, limit,
                                    lambda u: (u.id,))
    links = correlations(session, tenant_id, page)
    return Page[AccountPublic](
        items=[public(AccountPublic, u, **correlation_fields(links.get((u.source_id, u.zoom_id))))
               for u in page],
        next_cursor=next_cursor,
    )


@router.get("/{account_id}", response_model=AccountDetail)
def get_account(account_id: AccountId, tenant_id: TenantDep, session: SessionDep) -> AccountDetail:
    """Read a Zoom account with its groups, roles and correlated identity."""
    user = get_or_404(session, ZoomUser, tenant_id, account_id, "account")
    link = correlations(session, tenant_id, [user]).get((user.source_id, user.zoom_id))
    groups = session.exec(
        select(ZoomGroup)
        .join(ZoomGroupMember, and_(
            col(ZoomGroupMember.source_id) == ZoomGroup.source_id,
            col(ZoomGroupMember.group_zoom_id) == ZoomGroup.zoom_id,
        ))
        .where(
            col(ZoomGroup.tenant_id) == tenant_id,
            col(ZoomGroupMember.source_id) == user.source_id,
            col(ZoomGroupMember.user_zoom_id) == user.zoom_id,
            col(ZoomGroupMember.deleted_at).is_(None),
        )
        .order_by(col(ZoomGroup.name))
    ).all()
    roles = []
    if user.role_id:
        roles = list(
            session.exec(
                tenant_query(ZoomRole, tenant_id).where(
                    col(ZoomRole.source_id) == user.source_id, col(ZoomRole.zoom_id) == user.role_id
                )
            )
        )
    return public(AccountDetail, user, **correlation_fields(link),
                  groups=[public(GroupRef, g) for g in groups],
                  roles=[public(GroupRef, r) for r in roles])
