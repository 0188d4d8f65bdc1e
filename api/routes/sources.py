"""Sources: create, read, update (credential rotation), disable/enable, delete, list."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from api.deps import RedisDep, SessionDep, TenantDep, get_or_404
from api.errors import PROBLEM_RESPONSES, BadRequest, Conflict, Unprocessable
from api.pagination import keyset_page
from api.schemas.common import Limit, Page, public
from api.schemas.sources import (
    CREDENTIAL_FIELDS,
    CredentialsPresence,
    SourceCreate,
    SourcePublic,
    SourceUpdate,
)
from worker.db import get_for_tenant, tenant_query
from worker.models import Source, utcnow
from worker.sources import service as sources
from worker.sources.service import SourceInvalid
from worker.tokens.credentials import forget_source_credentials

router = APIRouter(prefix="/v1/sources", tags=["sources"], responses=PROBLEM_RESPONSES)

_NULLABLE_FIELDS = {"governance_group", "rate_share", "governance_source_id"}


@contextmanager
def _as_problems() -> Iterator[None]:
    """The sources service's refusals of input, as 422 problems on the field they name."""
    try:
        yield
    except SourceInvalid as exc:
        raise Unprocessable(str(exc), field=exc.field) from None


def compute_next_runs(source: Source, now: datetime) -> None:
    with _as_problems():
        sources.schedule(source, now)


def to_public(source: Source) -> SourcePublic:
    stored = sources.stored_credentials(source)
    presence = CredentialsPresence(**{name: bool(stored.get(name)) for name in CREDENTIAL_FIELDS})
    base = f"/v1/sources/{source.id}"
    # Beside the row's columns: which credentials are set (never their values), the
    # correlation switches as booleans, and the links.
    return public(
        SourcePublic, source, credentials=presence,
        correlation_config={k: bool(v) for k, v in (source.correlation_config or {}).items()},
        links={
            "self": base,
            "connection_tests": f"{base}/connection-tests",
            "runs": f"{base}/runs",
            # Zoom's event notification endpoint URL for this source (no API key: signed).
            "webhook": f"/v1/webhooks/zoom/{source.id}",
        },
    )


def _ensure_unique_name(
    session: Session, tenant_id: uuid.UUID, name: str, exclude: uuid.UUID | None = None
) -> None:
    if sources.name_taken(session, tenant_id, name, exclude):
        raise Conflict(f"a source named {name!r} already exists in this tenant")


def _check_governance_source(
    session: Session, tenant_id: uuid.UUID, governance_id: uuid.UUID | None, self_id: uuid.UUID
) -> None:
    if governance_id is None:
        return
    if governance_id == self_id:
        raise Unprocessable(
            "a source cannot be its own governance source", field="governance_source_id"
        )
    if get_for_tenant(session, Source, tenant_id, governance_id) is None:
        raise Unprocessable("no such source in this tenant", field="governance_source_id")


def _commit(session: Session, name: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        # Lost a race with a concurrent create/rename of the same name.
        session.rollback()
        raise Conflict(f"a source named {name!r} already exists in this tenant") from None


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SourcePublic)
def create_source(body: SourceCreate, tenant_id: TenantDep, session: SessionDep,
                  response: Response) -> SourcePublic:
    """Create a source (a Zoom app) with its credentials; they are stored encrypted."""
    _ensure_unique_name(session, tenant_id, body.name)
    source_id = uuid.uuid4()
    _check_governance_source(session, tenant_id, body.governance_source_id, source_id)
    with _as_problems():
        source = sources.new_source(
            tenant_id,
            source_id=source_id,
            name=body.name,
            grant_type=body.grant_type,
            credentials=body.credentials.plain(),
            # Every other field of the body is a column of the source of the same name.
            **body.model_dump(exclude={"name", "grant_type", "credentials"}),
        )
    session.add(source)
    _commit(session, body.name)
    response.headers["Location"] = f"/v1/sources/{source.id}"
    return to_public(source)


@router.get("", response_model=Page[SourcePublic])
def list_sources(
    tenant_id: TenantDep,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[Limit, Query()] = 50,
) -> Page[SourcePublic]:
    """List the tenant's sources, oldest first."""
    query = tenant_query(Source, tenant_id)
    rows: list[Source]
    rows, next_cursor = keyset_page(session, query, [col(Source.id)], cursor, limit,
                                    lambda s: (s.id,), kinds=[uuid.UUID])
    return Page[SourcePublic](items=[to_public(s) for s in rows], next_cursor=next_cursor)


@router.get("/{source_id}", response_model=SourcePublic)
def get_source(source_id: uuid.UUID, tenant_id: TenantDep, session: SessionDep) -> SourcePublic:
    """Read a source; credentials show only which fields are set."""
    return to_public(get_or_404(session, Source, tenant_id, source_id, "source"))


@router.patch("/{source_id}", response_model=SourcePublic)
def update_source(
    source_id: uuid.UUID, body: SourceUpdate, tenant_id: TenantDep, session: SessionDep,
    redis: RedisDep,
) -> SourcePublic:
    """Update a source; new credentials are merged, bump the version and drop cached tokens."""
    source = get_or_404(session, Source, tenant_id, source_id, "source")
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None and name not in _NULLABLE_FIELDS:
            raise Unprocessable("may not be null", field=name)
    if "name" in changes and changes["name"] != source.name:
        _ensure_unique_name(session, tenant_id, changes["name"], exclude=source.id)
    if "governance_source_id" in changes:
        _check_governance_source(session, tenant_id, changes["governance_source_id"], source.id)

    with _as_problems():
        rotated = sources.rotate_credentials(
            source,
            grant_type=body.grant_type,
            credentials=None if body.credentials is None else body.credentials.plain(),
        )
    now = utcnow()
    for name, value in changes.items():
        if name in {"credentials", "grant_type"}:
            continue
        setattr(source, name, value)
    compute_next_runs(source, now)
    source.updated_at = now
    session.add(source)
    _commit(session, source.name)
    if rotated:
        forget_source_credentials(redis, str(source.id))
    return to_public(source)


@router.post("/{source_id}/disable", response_model=SourcePublic)
def disable_source(source_id: uuid.UUID, tenant_id: TenantDep, session: SessionDep) -> SourcePublic:
    """Disable a source: no scheduled or manual runs until it is enabled again."""
    source = get_or_404(session, Source, tenant_id, source_id, "source")
    sources.disable(session, source, by="an admin")
    return to_public(source)


@router.post("/{source_id}/enable", response_model=SourcePublic)
def enable_source(source_id: uuid.UUID, tenant_id: TenantDep, session: SessionDep) -> SourcePublic:
    """Enable a disabled source; schedules resume after its next successful connection test."""
    source = get_or_404(session, Source, tenant_id, source_id, "source")
    with _as_problems():
        sources.enable(session, source)
    return to_public(source)


@router.delete("/{source_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_source(
    source_id: uuid.UUID,
    tenant_id: TenantDep,
    session: SessionDep,
    redis: RedisDep,
    confirm: Annotated[
        str | None, Query(max_length=200, description="The source's name, to confirm")
    ] = None,
) -> Response:
    """Delete a source and all its data; ``?confirm=<source name>`` is required."""
    source = get_or_404(session, Source, tenant_id, source_id, "source")
    if confirm != source.name:
        raise BadRequest(
            "deleting a source removes all its data: pass ?confirm=<the source's name>",
            field="confirm",
            location="query",
        )
    session.delete(source)  # ON DELETE CASCADE removes its Zoom data, runs and tests
    session.commit()
    forget_source_credentials(redis, str(source.id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)

