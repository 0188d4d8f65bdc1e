"""Zoom's event notifications: `POST /v1/webhooks/zoom/{source_id}`.

No API key (Zoom cannot send one): the signature made with the source's Secret Token is the
authentication. An unknown source, a bad signature and a stale timestamp all get the same bare
401, so the endpoint tells nobody which sources exist. The event is stored and committed before
the 200 (by the process's group commit, `worker.webhooks.intake`); its processing is enqueued
by a thread of the process, never by the request, so Zoom's 3 seconds hold with busy workers
or a broker that is down.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.errors import problem_response
from worker.webhooks import intake

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

# Zoom's event bodies are a few kilobytes; anything far beyond is not Zoom.
MAX_WEBHOOK_BYTES = 256 * 1024


class _TooLarge(Exception):
    pass


async def _capped_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/zoom/{source_id}", responses={401: {"description": "Not signed by Zoom"}})
async def zoom_webhook(source_id: str, request: Request) -> Response:
    """Receive one Zoom event (or answer Zoom's URL validation) for a source."""
    try:
        body = await _capped_body(request)
    except _TooLarge:
        return problem_response(413, f"webhook body larger than {MAX_WEBHOOK_BYTES} bytes",
                                slug="payload-too-large")
    try:
        answer = await intake.receive_soon(
            source_id[:64], body, request.headers.get("x-zm-request-timestamp"),
            request.headers.get("x-zm-signature"))
    except intake.Rejected:
        return Response(status_code=401)
    except intake.Busy:
        # The database is not keeping up; Zoom retries a 5xx later.
        return problem_response(503, "webhook intake is busy; retry", slug="unavailable",
                                headers={"Retry-After": "5"})
    except intake.NotJson:
        return problem_response(400, "the body is not a Zoom event (a JSON object with an "
                                "'event')", slug="bad-request")
    if answer.validation is not None:
        return JSONResponse(answer.validation)
    return JSONResponse({"status": "received"})
