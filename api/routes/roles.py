"""Zoom roles and their members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import SessionDep, TenantDep, get_or_404
from api.errors import PROBLEM_RESPONSES
from api.routes._directory import list_containers, list_members, to_public
from api.routes.accounts import SourceFilter, check_source
from api.schemas.common import MAX_BIGINT, Limit, Page
from api.schemas.directory import GroupPublic, MemberPublic
from worker.models import ZoomRole

router = APIRouter(prefix="/v1/roles", tags=["roles"], responses=PROBLEM_RESPONSES)

_BASE = "/v1/roles"
ZoomRoleId = Annotated[int, Path(ge=1, le=MAX_BIGINT)]
IncludeDeleted = Annotated[bool, Query(description="Include roles or members gone from Zoom")]


@router.get("", response_model=Page[GroupPublic])
def list_roles(
    tenant_id: TenantDep,
    session: SessionDep,
    source_id: SourceFilter = None,
    include_deleted: IncludeDeleted = False,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[GroupPublic]:
    """List Zoom roles."""
    check_source(session, tenant_id, source_id)
    return list_containers(session, ZoomRole, tenant_id, source_id, include_deleted, cursor,
                           limit, _BASE)


@router.get("/{role_id}", response_model=GroupPublic)
def get_role(role_id: ZoomRoleId, tenant_id: TenantDep, session: SessionDep) -> GroupPublic:
    """Read a Zoom role."""
    return to_public(get_or_404(session, ZoomRole, tenant_id, role_id, "role"), _BASE)


@router.get("/{role_id}/members", response_model=Page[MemberPublic])
def list_role_members(
    role_id: ZoomRoleId,
    tenant_id: TenantDep,
    session: SessionDep,
    include_deleted: IncludeDeleted = False,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[MemberPublic]:
    """List a Zoom role's members."""
    container = get_or_404(session, ZoomRole, tenant_id, role_id, "role")
    return list_members(session, container, tenant_id, include_deleted, cursor, limit)
