"""Factories for rows tests need; one place, so a model change is fixed once."""

from __future__ import annotations

import secrets
import uuid
from contextlib import nullcontext
from typing import Any

from sqlmodel import Session

from fakezoom.core import Account, App
from worker.db import session_scope
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


def app_credentials(app: App) -> tuple[GrantType, dict[str, Any]]:
    """What an admin enters for a fakezoom app: an S2S app names its account, a refresh-token
    app's account is learnt from Zoom."""
    creds: dict[str, Any] = {"client_id": app.client_id, "client_secret": app.client_secret}
    if app.kind == "s2s":
        creds["account_id"] = app.account_id
        return GrantType.ACCOUNT_CREDENTIALS, creds
    creds["refresh_token"] = app.refresh_token
    return GrantType.REFRESH_TOKEN, creds


def add_app_source(account: Account, app: App, *, name: str | None = None,
                   session: Session | None = None, **fields: Any) -> uuid.UUID:
    """A new tenant with one source for a fakezoom app, on the account's plan, committed (so
    worker processes see it), or only added to ``session``; returns the source id."""
    grant, creds = app_credentials(app)
    fields.setdefault("plan", account.plan)
    with session_scope() if session is None else nullcontext(session) as db:
        tenant = make_tenant(db)
        source = make_source(db, tenant, name=name, grant_type=grant, credentials=creds,
                             **fields)
        return source.id
