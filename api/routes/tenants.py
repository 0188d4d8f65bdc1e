"""Tenants (admin key only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from api.deps import AdminDep, SessionDep
from api.errors import PROBLEM_RESPONSES, Conflict, NotFound
from api.pagination import keyset_page
from api.schemas.common import Limit, Page, public
from api.schemas.tenants import TenantCreate, TenantPublic
from worker.models import Tenant

router = APIRouter(prefix="/v1/tenants", tags=["tenants"], responses=PROBLEM_RESPONSES)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TenantPublic)
def create_tenant(
    body: TenantCreate, _: AdminDep, session: SessionDep, response: Response
) -> TenantPublic:
    """Create a tenant (admin key)."""
    if session.exec(select(Tenant).where(Tenant.name == body.name)).first() is not None:
        raise Conflict(f"a tenant named {body.name!r} already exists")
    tenant = Tenant(name=body.name)
    session.add(tenant)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"a tenant named {body.name!r} already exists") from None
    response.headers["Location"] = f"/v1/tenants/{tenant.id}"
    return public(TenantPublic, tenant)


@router.get("", response_model=Page[TenantPublic])
def list_tenants(
    _: AdminDep,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[Limit, Query()] = 50,
) -> Page[TenantPublic]:
    """List tenants (admin key)."""
    query = select(Tenant)
    rows: list[Tenant]
    rows, next_cursor = keyset_page(session, query, [col(Tenant.id)], cursor, limit,
                                    lambda t: (t.id,), kinds=[uuid.UUID])
    return Page[TenantPublic](items=[public(TenantPublic, t) for t in rows],
                              next_cursor=next_cursor)


@router.get("/{tenant_id}", response_model=TenantPublic)
def get_tenant(tenant_id: uuid.UUID, _: AdminDep, session: SessionDep) -> TenantPublic:
    """Read a tenant (admin key)."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant")
    return public(TenantPublic, tenant)
