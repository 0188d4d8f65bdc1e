"""`meeting.ended`: store the meeting and fetch its participants report once Zoom has it.

The report is a Heavy call (against the account's daily budget, shared with the planner), so
one is reserved before the fetch; a meeting that does not fit today stays `pending` and the
next meetings chunk of the pull fetches it. Zoom builds the report a little after the end, so
the fetch is sent to run `REPORT_DELAY_SECONDS` after the meeting's end (at once for an event
that arrives later than that: a Zoom retry, a redelivery). The fetch locks the meeting row, so
duplicate events that send two fetches still pay for one report.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from worker.activity import summaries
from worker.clients import client_for_source
from worker.db import session_scope
from worker.dispatch import send
from worker.kit import sql
from worker.kit.redis import get_redis
from worker.models import Meeting, Source, WebhookEvent, WebhookStatus
from worker.ratelimit.budget import charging
from worker.zoom.items import parse_time

log = logging.getLogger(__name__)

TASK = "zoom.webhook_meeting_participants"
# Zoom's participants report appears some minutes after a meeting ends.
REPORT_DELAY_SECONDS = 300.0


def _s(value: Any, limit: int | None = None) -> str:
    # Identifiers are kept whole (a cut meeting UUID names another meeting); only display text
    # is shortened.
    text = "" if value is None else str(value)
    return text if limit is None else text[:limit]


def ended(session: Session, source: Source, obj: dict[str, Any]
          ) -> tuple[str, str]:
    meeting_uuid = _s(obj.get("uuid"))
    if not meeting_uuid:
        return WebhookStatus.IGNORED, "meeting.ended without a uuid"
    start, end = parse_time(obj.get("start_time")), parse_time(obj.get("end_time"))
    values = {
        "tenant_id": source.tenant_id, "source_id": source.id, "uuid": meeting_uuid,
        "meeting_id": _s(obj.get("id")), "host_zoom_id": _s(obj.get("host_id")),
        "topic": _s(obj.get("topic"), 500), "type": obj.get("type") if isinstance(
            obj.get("type"), int) else None,
        "start_time": start, "end_time": end,
        "duration": obj.get("duration") if isinstance(obj.get("duration"), int) else None,
        "participants_status": "pending",
    }
    table = Meeting.__table__  # type: ignore[attr-defined]
    insert = sql.insert(session, table)
    # The pull's row (with the report's totals) wins: the event only adds what is missing.
    session.execute(insert.values(values).on_conflict_do_nothing(
        index_elements=["source_id", "uuid"]))
    return WebhookStatus.PROCESSED, "meeting stored; participants report queued"


def report_delay(event: WebhookEvent, now: datetime | None = None) -> float:
    """Seconds until Zoom should have the participants report of the event's meeting."""
    try:
        obj = json.loads(event.body)["payload"]["object"]
        ended = parse_time(obj.get("end_time")) if isinstance(obj, dict) else None
    except (ValueError, KeyError, TypeError):
        ended = None
    if ended is None:
        return REPORT_DELAY_SECONDS
    left = (ended - (now or datetime.now(UTC))).total_seconds() + REPORT_DELAY_SECONDS
    return min(max(left, 0.0), REPORT_DELAY_SECONDS)


def enqueue_participants(event: WebhookEvent, countdown: float | None = None) -> None:
    if countdown is None:
        countdown = report_delay(event)
    try:
        send(TASK, event.id, tenant_id=event.tenant_id, source_id=event.source_id,
             countdown=countdown)
    except Exception:
        # The meeting stays pending: the pull's meetings chunk fetches its participants.
        log.warning("participants of webhook event %s not queued [tenant %s, source %s]",
                    event.id, event.tenant_id, event.source_id, exc_info=True)


def fetch_participants(event_id: uuid.UUID, *, client: Any = None, redis_client: Any = None
                       ) -> str:
    """Fetch the participants report of the meeting a `meeting.ended` event named, once."""

    from worker.activity.planner import heavy_budget
    from worker.activity.service import Chunk, _fetch_participants

    with session_scope() as session:
        event = session.get(WebhookEvent, event_id)
        if event is None:
            return "missing"
        source = session.get_one(Source, event.source_id)
        meeting_uuid = _s((json.loads(event.body).get("payload") or {}).get("object", {})
                          .get("uuid"))
        # Locked: a second fetch of the same meeting (a duplicate event's) waits, then finds
        # it fetched.
        meeting = session.exec(select(Meeting).where(Meeting.source_id == source.id,
                                                     Meeting.uuid == meeting_uuid)
                               .with_for_update()).first()
        if meeting is None or meeting.participants_status != "pending":
            return "noop"
        if redis_client is None:
            redis_client = get_redis()
        # One Heavy call reserved in the day's budget under the event's own name; the report's
        # requests draw from it, and what is left (nothing, usually) goes back at the end.
        budget, today, reservation = (heavy_budget(redis_client, source),
                                      datetime.now(UTC).date(), f"webhook:{event.id}")
        if budget.reserve(reservation, 1, today) is None:
            return "deferred: no Heavy budget left today; the next pull fetches it"
        if client is None:
            client = client_for_source(source.id)
        day = (meeting.start_time or datetime.now(UTC)).astimezone(UTC).date()
        # The report fetcher of the pull, on a chunk that is never committed as a run.
        chunk = Chunk(run_id=event.id, tenant_id=source.tenant_id, source_id=source.id,
                      stream="meetings", first=day, last=day, session=session, client=client,
                      check=lambda: None, checkpoint={})
        try:
            with charging(reservation):
                meeting.participants_status = _fetch_participants(chunk, meeting_uuid)
        finally:
            budget.release(reservation, today)
        session.add(meeting)
        session.flush()
        summaries.recompute(session, source, [day, day + timedelta(days=1)])
        return f"participants {meeting.participants_status}: {chunk.seen}"
