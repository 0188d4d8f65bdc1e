"""Connection tests: queued here, run by the worker (which calls Zoom), polled here."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlmodel import col

from api.deps import SessionDep, TenantDep, get_or_404
from api.errors import PROBLEM_RESPONSES
from api.pagination import keyset_page
from api.queueing import starting_work
from api.schemas.common import Limit, Page, public
from api.schemas.runs import ConnectionTestPublic
from api.schemas.sources import Accepted
from worker.db import tenant_query
from worker.models import ConnectionTest, Source
from worker.sources import service as sources

router = APIRouter(prefix="/v1", tags=["connection tests"], responses=PROBLEM_RESPONSES)


def _links(test: ConnectionTest) -> dict[str, str]:
    return {"self": f"/v1/connection-tests/{test.id}", "source": f"/v1/sources/{test.source_id}"}


def to_public(test: ConnectionTest) -> ConnectionTestPublic:
    return public(ConnectionTestPublic, test, links=_links(test))


@router.post(
    "/sources/{source_id}/connection-tests",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
)
def start_connection_test(
    source_id: uuid.UUID, tenant_id: TenantDep, session: SessionDep, response: Response
) -> Accepted:
    """Queue a connection test of the source's credentials and scopes; poll links.self."""
    source = get_or_404(session, Source, tenant_id, source_id, "source")
    with starting_work():
        test = sources.start_connection_test(session, source)
    response.headers["Location"] = _links(test)["self"]
    return Accepted(id=test.id, kind="connection_test", status=test.status, links=_links(test))


@router.get("/connection-tests/{test_id}", response_model=ConnectionTestPublic)
def get_connection_test(
    test_id: uuid.UUID, tenant_id: TenantDep, session: SessionDep
) -> ConnectionTestPublic:
    """Read a connection test: status, latency, scopes and a message an admin can act on."""
    return to_public(get_or_404(session, ConnectionTest, tenant_id, test_id, "connection test"))


@router.get("/sources/{source_id}/connection-tests", response_model=Page[ConnectionTestPublic])
def list_connection_tests(
    source_id: uuid.UUID,
    tenant_id: TenantDep,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[Limit, Query()] = 20,
) -> Page[ConnectionTestPublic]:
    """List a source's connection tests, newest first."""
    get_or_404(session, Source, tenant_id, source_id, "source")
    query = tenant_query(ConnectionTest, tenant_id).where(ConnectionTest.source_id == source_id)
    rows: list[ConnectionTest]
    rows, next_cursor = keyset_page(
        session, query, [col(ConnectionTest.created_at), col(ConnectionTest.id)], cursor, limit,
        lambda t: (t.created_at, t.id), kinds=[datetime, uuid.UUID], descending=True)
    return Page[ConnectionTestPublic](items=[to_public(t) for t in rows], next_cursor=next_cursor)
