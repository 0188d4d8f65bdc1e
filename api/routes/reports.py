"""The access review over HTTP: JSON pages, a streamed CSV, the report page, signed links."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlmodel import Session

from api.deps import SessionDep, TenantDep
from api.errors import PROBLEM_RESPONSES, Forbidden
from api.pagination import cut_page
from api.reports import links
from api.routes.accounts import SourceFilter, check_source
from api.schemas.common import Limit, decode_cursor
from api.schemas.reports import Finding, ReportLink, ReportLinkIn, ReviewPage, ReviewSummary
from worker.db import get_engine
from worker.models import Tenant, utcnow
from worker.reports import page
from worker.reports.export import csv_chunks
from worker.reports.findings import (
    DEFAULT_DAYS,
    ReviewParams,
    build_review,
    iter_accounts,
    summarise,
)
from worker.settings import get_settings

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=PROBLEM_RESPONSES)

Days = Annotated[int, Query(ge=1, le=3650, description="Idle threshold of the findings (days)")]
Format = Annotated[Literal["json", "csv", "html"] | None, Query(
    description="json (paged), csv (every account, streamed) or html (the report page); "
                "without it, Accept: text/csv or text/html choose")]
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def _wants(format: str | None, accept: str | None) -> str:
    if format:
        return format
    accept = (accept or "").lower()
    if "text/csv" in accept:
        return "csv"
    if "text/html" in accept and "json" not in accept:
        return "html"
    return "json"


def _stream_csv(params: ReviewParams, finding: str | None) -> Iterator[str]:
    # Its own session: the response body is sent after the request's session is closed.
    with Session(get_engine()) as session:
        review = build_review(session, params)
        yield from csv_chunks(iter_accounts(session, review, finding=finding))


def _render(params: ReviewParams) -> HTMLResponse:
    with Session(get_engine()) as session:
        html, _ = page.render(session, build_review(session, params))
    # The page is a tenant's data: no caching by the browser or a proxy, no referrer leak.
    return HTMLResponse(html, headers={"Cache-Control": "no-store",
                                       "Referrer-Policy": "no-referrer"})


@router.get(
    "/access-review",
    response_model=ReviewPage,
    responses={200: {"content": {"text/csv": {}, "text/html": {}},
                     "description": "JSON page, CSV of every account, or the report page"}},
)
def access_review(
    tenant_id: TenantDep,
    session: SessionDep,
    days: Days = DEFAULT_DAYS,
    source_id: SourceFilter = None,
    finding: Annotated[Finding | None, Query(description="Only accounts with this finding")]
    = None,
    format: Format = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[Limit, Query()] = 100,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response | ReviewPage:
    """Every Zoom account (not deleted) with the evidence a reviewer certifies and its findings.
    JSON is paged by account id; CSV streams every account (columns in the README)."""
    check_source(session, tenant_id, source_id)
    params = ReviewParams(tenant_id=tenant_id, now=utcnow(), days=days, source_id=source_id)
    wanted = _wants(format, accept)
    if wanted == "csv":
        return StreamingResponse(
            _stream_csv(params, finding), media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": 'attachment; filename="access-review.csv"',
                     "Cache-Control": "no-store"},
        )
    if wanted == "html":
        return _render(params)
    after = decode_cursor(cursor, int)
    after_id = after[0] if after else None
    # A page aggregates only its own accounts; with a finding, the next ones that have it.
    review = build_review(session, params, page=(after_id, limit + 1), finding=finding)
    rows = list(iter_accounts(session, review, finding=finding, after_id=after_id,
                              limit=limit + 1))
    items, next_cursor = cut_page(rows, limit, lambda row: (row.account_id,))
    return ReviewPage(
        generated_at=params.now, days=days, window_days=params.window_days,
        tenant_average_sign_ins=review.average, items=items, next_cursor=next_cursor,
    )


@router.get("/access-review/summary", response_model=ReviewSummary)
def access_review_summary(
    tenant_id: TenantDep, session: SessionDep, days: Days = DEFAULT_DAYS,
    source_id: SourceFilter = None,
) -> ReviewSummary:
    """Accounts per finding, licences used and unused, and the data of the page's charts."""
    check_source(session, tenant_id, source_id)
    params = ReviewParams(tenant_id=tenant_id, now=utcnow(), days=days, source_id=source_id)
    return summarise(session, build_review(session, params))


@router.post("/access-review/links", response_model=ReportLink, status_code=201)
def create_link(
    body: ReportLinkIn, tenant_id: TenantDep, session: SessionDep, request: Request
) -> ReportLink:
    """A link that opens this tenant's report page in a browser, without an API key, until it
    expires (at most a day). Anyone holding it can read the report: share it like a password."""
    check_source(session, tenant_id, body.source_id)
    expires = utcnow().replace(microsecond=0) + timedelta(seconds=body.expires_in)
    token = links.sign(links.LinkClaims(tenant_id=tenant_id, source_id=body.source_id,
                                        days=body.days, expires_at=expires), get_settings())
    href = str(request.url_for("access_review_page").include_query_params(token=token))
    return ReportLink(href=href, expires_at=expires)


# Errors are problem JSON like everywhere else: only the 200 is HTML (a response_class would
# document every error as text/html too).
@router.get("/access-review/page", response_model=None,
            responses={200: {"content": {"text/html": {"schema": {"type": "string"}}},
                             "description": "The report page"}})
def access_review_page(
    token: Annotated[str, Query(max_length=2000, description="From POST .../links")],
) -> HTMLResponse:
    """The report page, opened from a signed link (no API key)."""
    try:
        claims = links.verify(token, get_settings(), utcnow())
    except (links.LinkError, ValueError, KeyError, TypeError) as exc:
        message = str(exc) if isinstance(exc, links.LinkError) else "the link is not valid"
        raise Forbidden(message) from None
    with Session(get_engine()) as session:
        if session.get(Tenant, claims.tenant_id) is None:
            raise Forbidden("the link's tenant no longer exists")
    return _render(ReviewParams(tenant_id=claims.tenant_id, now=utcnow(), days=claims.days,
                                source_id=claims.source_id))
