"""Identities for correlation: bulk upsert (JSON or CSV), list, read."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Query, UploadFile
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from api.deps import SessionDep, TenantDep, get_or_404
from api.errors import PROBLEM_RESPONSES, PayloadTooLarge, Unprocessable
from api.pagination import keyset_page
from api.schemas.common import Limit, Page, Str320
from api.schemas.directory import (
    CorrelatedAccount,
    IdentityDetail,
    IdentityIn,
    IdentityPublic,
    IdentityUpsertResult,
)
from worker.db import is_postgres, tenant_query
from worker.models import AccountCorrelation, Identity, ZoomUser, utcnow

router = APIRouter(prefix="/v1/identities", tags=["identities"], responses=PROBLEM_RESPONSES)

# Per request, JSON or CSV. With the 8 MiB body cap this covers typical HR exports in a few
# calls while keeping one request's transaction short.
MAX_ROWS = 10_000
_BATCH = 1_000  # rows per INSERT statement: 11 parameters each, well under Postgres' 65,535
_CSV_COLUMNS = ("external_id", "email", "display_name", "status", "terminated_at")
# Columns whose empty cell means "not given" (the schema's default), not an empty string.
_CSV_OPTIONAL = ("status", "terminated_at")


def to_public(identity: Identity) -> IdentityPublic:
    return IdentityPublic.model_validate(identity)


def upsert_identities(
    session: Session, tenant_id: uuid.UUID, rows: Sequence[IdentityIn]
) -> IdentityUpsertResult:
    """Insert or update by (tenant, external_id); the last row wins for a repeated id."""
    latest: dict[str, IdentityIn] = {}
    for row in rows:
        latest[row.external_id] = row  # one statement cannot update the same row twice
    now = utcnow()
    inserted = updated = 0
    items = list(latest.values())
    insert = pg_insert if is_postgres(session) else sqlite_insert
    for start in range(0, len(items), _BATCH):
        batch = items[start:start + _BATCH]
        ids = [r.external_id for r in batch]
        existing = set(
            session.exec(
                select(Identity.external_id).where(
                    Identity.tenant_id == tenant_id, col(Identity.external_id).in_(ids)
                )
            )
        )
        values = [
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "external_id": r.external_id,
                "email": r.email,
                "email_normalized": r.email.lower(),
                "display_name": r.display_name,
                "attributes": r.attributes,
                "status": r.status,
                "terminated_at": r.terminated_at,
                "created_at": now,
                "updated_at": now,
            }
            for r in batch
        ]
        stmt = insert(Identity).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "external_id"],
            set_={
                "email": stmt.excluded.email,
                "email_normalized": stmt.excluded.email_normalized,
                "display_name": stmt.excluded.display_name,
                "attributes": stmt.excluded.attributes,
                "status": stmt.excluded.status,
                "terminated_at": stmt.excluded.terminated_at,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        session.execute(stmt)
        updated += len(existing)
        inserted += len(batch) - len(existing)
    session.commit()
    return IdentityUpsertResult(received=len(rows), inserted=inserted, updated=updated)


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
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unprocessable("the file is not UTF-8 text", field="file") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[IdentityIn] = []
    try:
        header = reader.fieldnames or []
        if "external_id" not in header:
            raise Unprocessable("the header row must name an external_id column", field="file")
        for number, record in enumerate(reader, start=2):
            if len(rows) >= MAX_ROWS:
                raise PayloadTooLarge(f"at most {MAX_ROWS} rows per file", field="file")
            rows.append(_csv_row(number, record))
    except csv.Error as exc:
        raise Unprocessable(f"not a readable CSV file: {exc}", field="file") from None
    return rows


def _csv_row(number: int, record: dict[str | Any, Any]) -> IdentityIn:
    extra = record.pop(None, None)  # values beyond the header's columns
    if extra:
        raise Unprocessable(f"row {number}: more values than header columns", field="file")
    fields: dict[str, Any] = {k: record.get(k) or "" for k in _CSV_COLUMNS}
    for k in _CSV_OPTIONAL:
        if not fields[k].strip():
            del fields[k]
    fields["attributes"] = {
        k: v for k, v in record.items() if k not in _CSV_COLUMNS and k and v not in (None, "")
    }
    try:
        return IdentityIn.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Unprocessable(f"row {number}: {where}: {first['msg']}", field="file") from None


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
    rows, next_cursor = keyset_page(session, query, col(Identity.external_id), cursor, limit,
                                    lambda i: i.external_id, kind=str)
    return Page[IdentityPublic](items=[to_public(i) for i in rows], next_cursor=next_cursor)


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
    return IdentityDetail(**to_public(identity).model_dump(), accounts=accounts)
