"""Identities for correlation: bulk upsert (JSON or CSV), list, read."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Body, File, Query, UploadFile
from sqlmodel import Session, col

from api.deps import SessionDep, TenantDep, get_or_404
from api.errors import PROBLEM_RESPONSES, PayloadTooLarge, Unprocessable
from api.pagination import keyset_page
from api.schemas.common import Limit, Page, Str320, public
from api.schemas.directory import (
    CorrelatedAccount,
    IdentityDetail,
    IdentityIn,
    IdentityPublic,
    IdentityUpsertResult,
)
from worker import identities
from worker.db import tenant_query
from worker.identities import MAX_ROWS, IdentitiesRejected
from worker.models import AccountCorrelation, Identity, ZoomUser

router = APIRouter(prefix="/v1/identities", tags=["identities"], responses=PROBLEM_RESPONSES)

def upsert_identities(
    session: Session, tenant_id: uuid.UUID, rows: Sequence[IdentityIn]
) -> IdentityUpsertResult:
    """Insert or update by (tenant, external_id); the last row wins for a repeated id."""
    return IdentityUpsertResult(**asdict(identities.upsert_identities(session, tenant_id, rows)))


@router.post("", response_model=IdentityUpsertResult)
def upsert_identities_json(
    tenant_id: TenantDep,
    session: SessionDep,
    body: Annotated[list[IdentityIn], Body(description=f"Up to {MAX_ROWS} identities")],
) -> IdentityUpsertResult:
    """Upsert identities from a JSON list (by external_id; up to 10,000 per request)."""
    if len(body) > MAX_ROWS:
        raise PayloadTooLarge(f"at most {MAX_ROWS} identities per request; got {len(body)}")
    return upsert_identities(session, tenant_id, body)


def parse_csv(data: bytes) -> list[IdentityIn]:
    """CSV with a header row: external_id (required), email, display_name, status (active,
    inactive or terminated; empty = active), terminated_at (ISO 8601; empty = none); any other
    column becomes an attribute."""
    try:
        return identities.parse_csv(data)
    except IdentitiesRejected as exc:
        problem = PayloadTooLarge if exc.too_large else Unprocessable
        raise problem(str(exc), field="file") from None


@router.post("/csv", response_model=IdentityUpsertResult)
def upsert_identities_csv(
    tenant_id: TenantDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="CSV: external_id,email,display_name,...")],
) -> IdentityUpsertResult:
    """Upsert identities from a CSV upload (multipart field 'file'; up to 10,000 rows)."""
    return upsert_identities(session, tenant_id, parse_csv(file.file.read()))


@router.get("", response_model=Page[IdentityPublic])
def list_identities(
    tenant_id: TenantDep,
    session: SessionDep,
    email: Annotated[Str320 | None, Query(description="Exact, case-insensitive")] = None,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[Limit, Query()] = 100,
) -> Page[IdentityPublic]:
    """List identities by external_id."""
    query = tenant_query(Identity, tenant_id)
    if email:
        query = query.where(Identity.email_normalized == email.lower())
    rows: list[Identity]
    rows, next_cursor = keyset_page(session, query, [col(Identity.external_id)], cursor, limit,
                                    lambda i: (i.external_id,), kinds=[str])
    return Page[IdentityPublic](items=[public(IdentityPublic, i) for i in rows],
                                next_cursor=next_cursor)


@router.get("/{identity_id}", response_model=IdentityDetail)
def get_identity(
    identity_id: uuid.UUID, tenant_id: TenantDep, session: SessionDep
) -> IdentityDetail:
    """Read an identity with the Zoom accounts correlated to it."""
    identity = get_or_404(session, Identity, tenant_id, identity_id, "identity")
    links = session.exec(
        tenant_query(AccountCorrelation, tenant_id).where(
            AccountCorrelation.identity_id == identity.id
        )
    ).all()
    accounts = []
    for link in links:
        user = session.exec(
            tenant_query(ZoomUser, tenant_id).where(
                ZoomUser.source_id == link.source_id, ZoomUser.zoom_id == link.user_zoom_id
            )
        ).first()
        accounts.append(
            CorrelatedAccount(
                account_id=user.id if user else None,
                source_id=link.source_id,
                zoom_id=link.user_zoom_id,
                email=user.email if user else None,
                method=link.method,
                correlated_at=link.correlated_at,
            )
        )
    return public(IdentityDetail, identity, accounts=accounts)
