"""Dependencies shared by the routes: session, Redis, the caller's key, its tenant.

Keys come as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The admin key is the
``AI_ADMIN_API_KEY`` setting (compared in constant time) or an ``ApiKey`` row with
``is_admin``; a tenant key is an ``ApiKey`` row of that tenant. Revoked or unknown keys get
the same 401, and every authenticated request is counted by the flood guard.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, TypeVar

import redis
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session, SQLModel, select

from api.errors import Forbidden, NotFound, Unauthorized
from api.ratelimit import RateLimit
from worker.db import get_engine, get_for_tenant, session_scope
from worker.kit.apikeys import hash_key
from worker.kit.redis import client_for
from worker.models import ApiKey, utcnow
from worker.settings import Settings, SettingsError, get_settings

# last_used_at is a hint for key hygiene, not an audit log: one write per key per interval.
_LAST_USED_RESOLUTION = timedelta(minutes=5)
_ADMIN_ENV_KEY_ID = "admin-env"

T = TypeVar("T", bound=SQLModel)


def get_session() -> Iterator[Session]:
    """A request's session. Handlers that write call ``commit()`` themselves, before they
    enqueue anything, so a worker never looks for a row that is not committed yet."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise


def redis_client(url: str | None = None) -> redis.Redis:
    # Short timeouts: the API answers in milliseconds or says a dependency is down.
    return client_for(url or get_settings().redis_url, connect_timeout=1.0, socket_timeout=2.0)


def get_redis() -> redis.Redis:
    return redis_client()


SessionDep = Annotated[Session, Depends(get_session)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


@dataclass(frozen=True)
class Principal:
    key_id: str
    tenant_id: uuid.UUID | None
    is_admin: bool


_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


def _configured_admin_key(settings: Settings) -> str | None:
    try:
        settings.require("admin_api_key")
    except SettingsError:
        return None
    return settings.admin_api_key


def _rate_limit(request: Request) -> RateLimit:
    configured = getattr(request.app.state, "rate_limit", None)
    if isinstance(configured, RateLimit):
        return configured
    per_minute = get_settings().api_rate_limit_per_minute
    return RateLimit(limit=int(per_minute))


def _touch(key: ApiKey) -> None:
    now = utcnow()
    last = key.last_used_at
    if last is not None and now - last < _LAST_USED_RESOLUTION:
        return
    with session_scope() as session:
        row = session.get(ApiKey, key.id)
        if row is not None:
            row.last_used_at = now


def authenticate(
    request: Request,
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_header)],
) -> Principal:
    """Resolve the caller's key to a principal, or 401; then count it against the flood guard."""
    presented = (bearer.credentials if bearer else None) or header_key
    if not presented or len(presented) > 512:
        raise Unauthorized()
    settings = get_settings()
    admin_key = _configured_admin_key(settings)
    principal: Principal | None = None
    if admin_key is not None and hmac.compare_digest(
        presented.encode("utf-8", "surrogatepass"), admin_key.encode()
    ):
        principal = Principal(key_id=_ADMIN_ENV_KEY_ID, tenant_id=None, is_admin=True)
    else:
        row = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(presented))).first()
        if row is None or row.revoked_at is not None:
            raise Unauthorized()
        if not row.is_admin and row.tenant_id is None:
            raise Unauthorized()
        principal = Principal(key_id=str(row.id), tenant_id=row.tenant_id, is_admin=row.is_admin)
        _touch(row)
    _rate_limit(request).check(get_redis(), principal.key_id)
    return principal


AuthDep = Annotated[Principal, Depends(authenticate)]


def require_admin(principal: AuthDep) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this endpoint needs the admin key")
    return principal


def require_tenant(principal: AuthDep) -> uuid.UUID:
    if principal.tenant_id is None:
        raise Forbidden("this endpoint needs a tenant key (the admin key manages tenants and keys)")
    return principal.tenant_id


AdminDep = Annotated[Principal, Depends(require_admin)]
TenantDep = Annotated[uuid.UUID, Depends(require_tenant)]


def get_or_404(
    session: Session, model: type[T], tenant_id: uuid.UUID, row_id: object, what: str
) -> T:
    """One tenant's row by id; a missing row and another tenant's row both answer 404."""
    row = get_for_tenant(session, model, tenant_id, row_id)
    if row is None:
        raise NotFound(what)
    return row
