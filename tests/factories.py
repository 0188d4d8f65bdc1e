"""Factories for rows tests need; one place, so a model change is fixed once."""

from __future__ import annotations

import secrets
from typing import Any

from sqlmodel import Session

from worker.kit.crypto import encrypt_json
from worker.models import GrantType, Source, Tenant


def make_tenant(session: Session, name: str | None = None) -> Tenant:
    tenant = Tenant(name=name or f"tenant-{secrets.token_hex(4)}")
    session.add(tenant)
    session.flush()
    return tenant


def make_source(
    session: Session,
    tenant: Tenant,
    *,
    name: str | None = None,
    grant_type: str = GrantType.ACCOUNT_CREDENTIALS,
    credentials: dict[str, Any] | None = None,
    **fields: Any,
) -> Source:
    if credentials is None:
        credentials = {"client_id": "cid", "client_secret": "csecret", "account_id": "acct"}
    source = Source(
        tenant_id=tenant.id,
        name=name or f"zoom-{secrets.token_hex(4)}",
        grant_type=grant_type,
        credentials_ciphertext=encrypt_json(credentials),
        credentials_version=1,
        zoom_account_id=credentials.get("account_id"),
        **fields,
    )
    session.add(source)
    session.flush()
    return source
