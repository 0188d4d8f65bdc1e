"""Sync runs: aggregation, correlation and activity sync are queued here and read here."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response, status
from sqlmodel import Session, col

from api.deps import SessionDep, TenantDep, get_or_404
from api.errors import PROBLEM_RESPONSES, Conflict, Unprocessable
from api.pagination import keyset_page
from api.queueing import starting_work
from api.schemas.common import Limit, Page, public
from api.schemas.runs import ActivitySyncRequest, RunDetail, RunPublic
from api.schemas.sources import Accepted
from worker.db import tenant_query
from worker.models import RunKind, RunStatus, RunTrigger, Source, SyncRun, utcnow
from worker.sources import service as sources
from worker.zoom.reports import earliest_report_time

router = APIRouter(prefix="/v1", tags=["runs"], responses=PROBLEM_RESPONSES)

# Clocks differ: a "to" a little in the future is read as "now".
_CLOCK_SKEW = timedelta(minutes=5)


def _links(run: SyncRun) -> dict[str, str]:
    return {"self": f"/v1/runs/{run.id}", "source": f"/v1/sources/{run.source_id}"}


def to_public(run: SyncRun) -> RunPublic:
    return public(RunPublic, run, links=_links(run))


def _startable(session: Session, tenant_id: uuid.UUID, source_id: uuid.UUID) -> Source:
    source = get_or_404(session, Source, tenant_id, source_id, "source")
    with starting_work():
        sources.refuse_disabled(source)
    return source


def _start(
    session: Session,
    source: Source,
    kind: RunKind,
    response: Response,
    window: tuple[datetime | None, datetime | None] = (None, None),
) -> Accepted:
    with starting_work():
        run = sources.start_run(session, source, kind, RunTrigger.API, window)
    response.headers["Location"] = _links(run)["self"]
    kind_name: Literal["aggregation", "correlation", "activity"] = kind.value
    return Accepted(id=run.id, kind=kind_name, status=run.status, links=_links(run))


@router.post("/sources/{source_id}/aggregations", status_code=status.HTTP_202_ACCEPTED,
             response_model=Accepted)
def start_aggregation(
    source_id: uuid.UUID, tenant_id: TenantDep, session: SessionDep, response: Response
) -> Accepted:
    """Queue an aggregation of the source's users, groups and roles."""
    source = _startable(session, tenant_id, source_id)
    if not source.aggregation_enabled:
        raise Conflict("aggregation is switched off for this source (aggregation_enabled)")
    return _start(session, source, RunKind.AGGREGATION, response)


@router.post("/sources/{source_id}/correlations", status_code=status.HTTP_202_ACCEPTED,
             response_model=Accepted)
def start_correlation(
    source_id: uuid.UUID, tenant_id: TenantDep, session: SessionDep, response: Response
) -> Accepted:
    """Queue a correlation of the source's Zoom accounts with the tenant's identities."""
    source = _startable(session, tenant_id, source_id)
    return _start(session, source, RunKind.CORRELATION, response)


@router.post("/sources/{source_id}/activity-syncs", status_code=status.HTTP_202_ACCEPTED,
             response_model=Accepted)
def start_activity_sync(
    source_id: uuid.UUID,
    tenant_id: TenantDep,
    session: SessionDep,
    response: Response,
    body: Annotated[ActivitySyncRequest | None, Body()] = None,
) -> Accepted:
    """Queue an activity sync: incremental, or a backfill of [from, to) within six months."""
    source = _startable(session, tenant_id, source_id)
    if not source.activity_enabled:
        raise Conflict("activity sync is switched off for this source (activity_enabled)")
    window = _backfill_window(body)
    return _start(session, source, RunKind.ACTIVITY, response, window)


def _backfill_window(
    body: ActivitySyncRequest | None,
) -> tuple[datetime | None, datetime | None]:
    if body is None or (body.from_ is None and body.to is None):
        return None, None
    now = utcnow()
    start, end = body.from_, body.to
    if start is None:
        raise Unprocessable("is required when to is given", field="from")
    if end is None or end > now:
        if end is not None and end > now + _CLOCK_SKEW:
            raise Unprocessable("must not be in the future", field="to")
        end = now
    if end <= start:
        raise Unprocessable("must be after from", field="to")
    # Zoom answers reports for six months back (worker.zoom.reports): older dates fail with 300.
    if start < earliest_report_time(now):
        raise Unprocessable(
            "must be within the last six months (Zoom keeps report data that long)",
            field="from",
        )
    return start, end


@router.get("/runs/{run_id}", response_model=RunDetail)
def get_run(run_id: uuid.UUID, tenant_id: TenantDep, session: SessionDep) -> RunDetail:
    """Read a run: status, counts and errors; an activity sync lists its chunk runs."""
    run = get_or_404(session, SyncRun, tenant_id, run_id, "run")
    children = session.exec(
        tenant_query(SyncRun, tenant_id)
        .where(SyncRun.parent_id == run.id)
        .order_by(col(SyncRun.window_start), col(SyncRun.created_at))
        .limit(1000)
    ).all()
    return public(RunDetail, run, links=_links(run), children=[to_public(c) for c in children])


@router.get("/sources/{source_id}/runs", response_model=Page[RunPublic])
def list_runs(
    source_id: uuid.UUID,
    tenant_id: TenantDep,
    session: SessionDep,
    kind: Annotated[RunKind | None, Query()] = None,
    run_status: Annotated[RunStatus | None, Query(alias="status")] = None,
    include_chunks: Annotated[bool, Query(description="Also list activity chunk runs")] = False,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[Limit, Query()] = 50,
) -> Page[RunPublic]:
    """List a source's runs, newest first."""
    get_or_404(session, Source, tenant_id, source_id, "source")
    query = tenant_query(SyncRun, tenant_id).where(SyncRun.source_id == source_id)
    if kind is not None:
        query = query.where(SyncRun.kind == kind)
    if run_status is not None:
        query = query.where(SyncRun.status == run_status)
    if not include_chunks:
        query = query.where(col(SyncRun.parent_id).is_(None))
    rows: list[SyncRun]
    rows, next_cursor = keyset_page(
        session, query, [col(SyncRun.created_at), col(SyncRun.id)], cursor, limit,
        lambda r: (r.created_at, r.id), kinds=[datetime, uuid.UUID], descending=True)
    return Page[RunPublic](items=[to_public(r) for r in rows], next_cursor=next_cursor)
