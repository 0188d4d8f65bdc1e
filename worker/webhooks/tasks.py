"""Celery shells of webhook processing: one inbox event, and a meeting's participants."""

from __future__ import annotations

import uuid
from typing import Any

from worker.celery_app import celery_app
from worker.webhooks import meetings, service


@celery_app.task(name="zoom.webhook_events", acks_late=True, reject_on_worker_lost=True,
                 autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def webhook_events(event_ids: list[str]) -> int:
    # Each event commits on its own: a retry after a failure re-runs only what is pending.
    for event_id in event_ids:
        service.process(uuid.UUID(event_id))
    return len(event_ids)


@celery_app.task(name="zoom.webhook_meeting_participants", bind=True, acks_late=True,
                 reject_on_worker_lost=True)
def webhook_meeting_participants(_self: Any, event_id: str) -> str:
    # A failure leaves the meeting pending: the pull's meetings chunk fetches it then.
    return meetings.fetch_participants(uuid.UUID(event_id))
