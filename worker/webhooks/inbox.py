"""The webhook inbox: enqueueing stored events by id, and the sweep.

Intake (`worker.webhooks.intake`) commits each event before anything is sent; the task is then
sent by a thread of the API process (the request never waits on it), and while a send fails
that thread stops trying for a few seconds (the sweep sends what is pending).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, bindparam, delete, func, or_, update
from sqlmodel import Session, col, select

from worker.db import session_scope
from worker.dispatch import shown_kwargs
from worker.models import WebhookEvent, WebhookStatus, utcnow
from worker.models.base import as_utc
from worker.queues import TASK_ROUTES

log = logging.getLogger(__name__)

TASK = "zoom.webhook_events"
# After a failed send the API leaves the inbox to the sweep for this long.
BROKER_BACKOFF_SECONDS = 5.0
# The sweep re-sends a pending event that was sent this long ago and is still not done
# (its message was lost, or its worker died), and gives up after MAX_ATTEMPTS sends.
RESEND_AFTER = timedelta(minutes=5)
# An event never sent is left this long to the API's own send before the sweep takes it.
UNSENT_GRACE = timedelta(seconds=10)
MAX_ATTEMPTS = 5
SWEEP_BATCH = 500
BATCH = 100  # event ids per task message
# Finished events are kept this long (to look into, and as the start of `webhooks_since`).
RETENTION = timedelta(days=30)
# Events waiting in one API process for its sender thread; beyond, the sweep sends them.
SENDER_QUEUE = 10_000
# While events come fast, the sender waits this long after one for others to send in the
# same message(s); it takes at most SEND_MAX at a time.
SEND_WINDOW_SECONDS = 0.05
# "Fast": the previous send was less than this ago (more than 20 events a second).
BUSY_SECONDS = 0.05
SEND_MAX = 500
# Sent events are marked (enqueued_at) in one UPDATE this often, or every MARK_MAX events.
MARK_INTERVAL_SECONDS = 1.0
MARK_MAX = 2_000


# --- sending ------------------------------------------------------------------------------


def send(tenant_id: uuid.UUID, source_id: uuid.UUID, event_ids: list[uuid.UUID]) -> bool:
    """Send one processing task for committed inbox rows of one source (ids only, as
    `worker.dispatch.send` words its messages); False when the broker refused. One message
    carries up to BATCH ids: a Celery publish costs more than a whole intake, so at a high
    rate the sender groups what has piled up, and at a low one each event goes alone."""
    from worker.celery_app import celery_app

    ids = [str(i) for i in event_ids]
    try:
        celery_app.send_task(
            TASK, args=[ids], queue=str(TASK_ROUTES[TASK]),
            headers={"tenant_id": str(tenant_id), "source_id": str(source_id)},
            argsrepr=f"[{len(ids)} webhook events]",
            kwargsrepr=shown_kwargs(tenant_id, source_id),
            ignore_result=True,
        )
    except Exception as exc:
        log.warning("%d webhook events not sent (%s); the sweep will send them [tenant %s, "
                    "source %s]", len(ids), type(exc).__name__, tenant_id, source_id)
        return False
    return True


def _send_grouped(rows: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]) -> list[uuid.UUID] | None:
    """Send (event, tenant, source) rows, one message per source and BATCH; returns the ids
    sent, stopping at the first refusal (None when nothing could be sent)."""
    groups: dict[tuple[uuid.UUID, uuid.UUID], list[uuid.UUID]] = {}
    for event_id, tenant_id, source_id in rows:
        groups.setdefault((tenant_id, source_id), []).append(event_id)
    sent: list[uuid.UUID] = []
    for (tenant_id, source_id), ids in groups.items():
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            if not send(tenant_id, source_id, chunk):
                return sent or None
            sent.extend(chunk)
    return sent


class _Sender:
    """One thread per API process that sends the tasks of stored events, so a request never
    waits on the broker (a Celery publish costs more than the whole intake) and a broker
    outage costs the requests nothing. Ids it could not send, or that were still queued here
    when the process ended, are committed rows: the sweep sends them."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[uuid.UUID, uuid.UUID, uuid.UUID]] = queue.Queue(
            maxsize=SENDER_QUEUE)
        self.pid: int | None = None
        self.lock = threading.Lock()

    def submit(self, event_id: uuid.UUID, tenant_id: uuid.UUID, source_id: uuid.UUID) -> None:
        with self.lock:
            if self.pid != os.getpid():  # first use, or a forked child
                self.pid = os.getpid()
                self.queue = queue.Queue(maxsize=SENDER_QUEUE)
                threading.Thread(target=self._run, args=(self.queue,), daemon=True,
                                 name="webhook-sender").start()
        with contextlib.suppress(queue.Full):  # full: the sweep sends it
            self.queue.put_nowait((event_id, tenant_id, source_id))

    def _run(self, pending: queue.Queue[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]) -> None:
        backoff_until = 0.0
        unmarked: list[uuid.UUID] = []
        marked_at = sent_at = time.monotonic()
        while True:
            # The last send was a moment ago: events are coming fast, group them; else send
            # this one at once (no added latency at a low rate).
            busy = time.monotonic() - sent_at < BUSY_SECONDS
            batch = _take(pending, timeout=MARK_INTERVAL_SECONDS if unmarked else None,
                          window=SEND_WINDOW_SECONDS if busy else 0.0)
            if batch:
                sent_at = time.monotonic()
            if batch and time.monotonic() >= backoff_until:
                sent = _send_grouped(batch)
                if sent is None or len(sent) < len(batch):
                    # The broker was down: leave the next few seconds' events to the sweep.
                    backoff_until = time.monotonic() + BROKER_BACKOFF_SECONDS
                unmarked.extend(sent or [])
            # Marked in bulk: the sweep leaves unsent events alone for UNSENT_GRACE, far longer
            # than this, and one UPDATE (a commit) per publish cost as much as the intake.
            if unmarked and (len(unmarked) >= MARK_MAX
                             or time.monotonic() - marked_at >= MARK_INTERVAL_SECONDS):
                try:
                    with session_scope() as session:
                        _mark_sent(session, unmarked)
                except Exception:
                    log.warning("could not mark %d webhook events sent", len(unmarked),
                                exc_info=True)
                unmarked, marked_at = [], time.monotonic()


def _take(pending: queue.Queue[tuple[uuid.UUID, uuid.UUID, uuid.UUID]],
          timeout: float | None, window: float) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]:
    """The next events to send: the first to arrive (waiting up to `timeout`, None: for
    ever), and those already waiting or arriving within `window` after it, up to SEND_MAX. A
    publish costs more than an intake, so at a high rate one message carries many ids."""
    try:
        batch = [pending.get(timeout=timeout)]
    except queue.Empty:
        return []
    until = time.monotonic() + window
    while len(batch) < SEND_MAX:
        left = until - time.monotonic()
        try:
            batch.append(pending.get(timeout=left) if left > 0 else pending.get_nowait())
        except queue.Empty:
            break
    return batch


_sender = _Sender()


def send_soon(event_id: uuid.UUID, tenant_id: uuid.UUID, source_id: uuid.UUID) -> None:
    """Hand a committed event to this process's sender thread; returns at once."""
    _sender.submit(event_id, tenant_id, source_id)


def _mark_sent(session: Session, ids: list[uuid.UUID]) -> None:
    session.execute(
        update(WebhookEvent)
        .where(col(WebhookEvent.id).in_(ids), col(WebhookEvent.status) == WebhookStatus.PENDING)
        .values(enqueued_at=utcnow(), attempts=WebhookEvent.attempts + 1)
    )


def sweep(now: datetime | None = None, *, limit: int = SWEEP_BATCH) -> int:
    """Send the pending events nobody sent (broker down at intake) or whose message went
    missing; events sent MAX_ATTEMPTS times are marked failed (the daily pull repairs what
    they carried); finished events older than RETENTION go. Called by the beat tick; returns
    how many it sent."""
    now = now or utcnow()
    with session_scope() as session:
        session.execute(
            update(WebhookEvent)
            .where(col(WebhookEvent.status) == WebhookStatus.PENDING,
                   col(WebhookEvent.attempts) >= MAX_ATTEMPTS,
                   col(WebhookEvent.enqueued_at) < now - RESEND_AFTER)
            .values(status=WebhookStatus.FAILED, processed_at=now,
                    outcome=f"not processed after {MAX_ATTEMPTS} sends")
        )
        old = select(WebhookEvent.id).where(
            col(WebhookEvent.status) != WebhookStatus.PENDING,
            col(WebhookEvent.received_at) < now - RETENTION).limit(limit)
        session.execute(delete(WebhookEvent).where(col(WebhookEvent.id).in_(old)))
        due = session.exec(
            select(WebhookEvent.id, WebhookEvent.tenant_id, WebhookEvent.source_id)
            .where(col(WebhookEvent.status) == WebhookStatus.PENDING,
                   or_(and_(col(WebhookEvent.enqueued_at).is_(None),
                            col(WebhookEvent.received_at) < now - UNSENT_GRACE),
                       col(WebhookEvent.enqueued_at) < now - RESEND_AFTER))
            .order_by(col(WebhookEvent.received_at))
            .limit(limit)
        ).all()
    # Stops at the first refusal: the broker is down, the next tick tries again.
    sent = _send_grouped([(e, t, s) for e, t, s in due]) or []
    if sent:
        with session_scope() as session:
            _mark_sent(session, sent)
        log.info("webhook sweep: %d pending events sent", len(sent))
    return len(sent)


# Asked for every page of pulled sign-ins: built once, and run on the connection (no ORM
# statement, no autoflush), where building and running it through the session was a visible
# share of the worker's CPU per event (bench/RESULTS.md, issue 15).
_FIRST_WEBHOOK = (
    select(func.min(WebhookEvent.received_at), func.min(WebhookEvent.event_ts))
    .where(col(WebhookEvent.source_id) == bindparam("source_id"))
)


def webhooks_since(session: Session, source_id: uuid.UUID) -> datetime | None:
    """Since when the source's webhooks report events: the earliest event (by Zoom's event_ts,
    or its arrival) the inbox holds, less a second (a sign-in's time has whole seconds).
    None: the source never received one."""
    first_received, first_ts = session.connection().execute(
        _FIRST_WEBHOOK, {"source_id": source_id}).one()
    received = as_utc(first_received)
    if received is None:
        return None
    if first_ts is not None:
        received = min(received, datetime.fromtimestamp(first_ts / 1000, UTC))
    return received - timedelta(seconds=1)
