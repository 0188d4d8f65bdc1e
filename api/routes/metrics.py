"""``GET /metrics``: the Prometheus text format, behind the admin key.

Same auth as the rest of the API (Prometheus sends it with ``authorization: {credentials: ...}``
in its scrape config), because the figures describe every tenant's work. The figures are
computed when scraped (``worker.kit.metrics``); this process adds nothing of its own.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import AdminDep
from api.errors import PROBLEM_RESPONSES
from worker.kit.metrics import registry

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"},
               **PROBLEM_RESPONSES},
)
def metrics(_: AdminDep) -> Response:
    """Runs by kind and status, the oldest running run, deferred chunks, queue depths, Zoom
    requests and 429s per category, limiter waits, token refreshes. Admin key only."""
    return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)
