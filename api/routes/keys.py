"""Per-tenant API keys (admin key only): created once, shown once, stored as a hash."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status
from sqlmodel import Session, col, select

from api.deps import AdminDep, SessionDep
from api.errors import PROBLEM_RESPONSES, NotFound
from api.schemas.common import public
from api.schemas.tenants import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from worker.kit.apikeys import display_prefix, generate_key, hash_key
from worker.models import ApiKey, Tenant, utcnow

router = APIRouter(prefix="/v1/tenants/{tenant_id}/keys", tags=["keys"],
                   responses=PROBLEM_RESPONSES)


def _tenant(session: Session, tenant_id: uuid.UUID) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant")
    return tenant


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
def create_key(
    tenant_id: uuid.UUID, body: ApiKeyCreate, _: AdminDep, session: SessionDep
) -> ApiKeyCreated:
    """Create a tenant API key; the key is in this response only."""
    _tenant(session, tenant_id)
    plain = generate_key()
    key = ApiKey(
        tenant_id=tenant_id,
        name=body.name,
        prefix=display_prefix(plain),
        key_hash=hash_key(plain),
    )
    session.add(key)
    session.commit()
    return public(ApiKeyCreated, key, key=plain)


@router.get("", response_model=list[ApiKeyPublic])
def list_keys(tenant_id: uuid.UUID, _: AdminDep, session: SessionDep) -> list[ApiKeyPublic]:
    """List a tenant's keys (prefix only), revoked ones included."""
    _tenant(session, tenant_id)
    rows = session.exec(
        select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(col(ApiKey.created_at))
    ).all()
    return [public(ApiKeyPublic, k) for k in rows]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(tenant_id: uuid.UUID, key_id: uuid.UUID, _: AdminDep,
               session: SessionDep) -> Response:
    """Revoke a key; it stops working at once. Revoking twice is harmless."""
    key = session.get(ApiKey, key_id)
    if key is None or key.tenant_id != tenant_id:
        raise NotFound("key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
