"""Tenants (admin key only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from api.deps import AdminDep, SessionDep
from api.errors import PROBLEM_RESPONSES, Conflict, NotFound
from api.schemas.common import Limit, Page, decode_cursor, encode_cursor
from api.schemas.tenants import TenantCreate, TenantPublic
from worker.models import Tenant

router = APIRouter(prefix="/v1/tenants", tags=["tenants"], responses=PROBLEM_RESPONSES)


def to_public(tenant: Tenant) -> TenantPublic:
    return TenantPublic(id=tenant.id, name=tenant.name, created_at=tenant.created_at)


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
    return to_public(tenant)


@router.get("", response_model=Page[TenantPublic])
def list_tenants(
    _: AdminDep,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[Limit, Query()] = 50,
) -> Page[TenantPublic]:
    """List tenants (admin key)."""
    query = select(Tenant)
    after = decode_cursor(cursor, uuid.UUID)
    if after is not None:
        query = query.where(col(Tenant.id) > after[0])
    rows = list(session.exec(query.order_by(col(Tenant.id)).limit(limit + 1)))
    next_cursor = encode_cursor(str(rows[limit - 1].id)) if len(rows) > limit else None
    return Page[TenantPublic](items=[to_public(t) for t in rows[:limit]], next_cursor=next_cursor)


@router.get("/{tenant_id}", response_model=TenantPublic)
def get_tenant(tenant_id: uuid.UUID, _: AdminDep, session: SessionDep) -> TenantPublic:
    """Read a tenant (admin key)."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant")
    return to_public(tenant)
