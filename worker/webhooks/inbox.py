"""The webhook inbox: intake (verify, store, commit), enqueueing by id, and the sweep.

Intake runs in the API process and never waits on the broker: the row is committed first, the
task is sent by a thread of the process (the request only hands it the id), and while a send
fails that thread stops trying for a few seconds (the sweep sends what is pending). Nothing of
a body is logged or stored before its signature holds; what is stored afterwards is the raw
body, for the worker to parse.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Text, Uuid, and_, bindparam, column, delete, func, or_, text, update
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from worker.db import get_engine, session_scope
from worker.dispatch import shown_kwargs
from worker.models import Source, WebhookEvent, WebhookStatus, utcnow
from worker.models.base import UTCDateTime, as_utc
from worker.queues import TASK_ROUTES
from worker.sources.service import webhook_secret
from worker.webhooks import signature

log = logging.getLogger(__name__)

TASK = "zoom.webhook_events"
URL_VALIDATION = "endpoint.url_validation"
# last_webhook_at is a health hint: one write per source per this interval at most.
LAST_SEEN_RESOLUTION = timedelta(seconds=5)
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


class Rejected(Exception):
    """Unknown source, bad signature or stale timestamp: one answer for all (no probing)."""


class NotJson(Exception):
    """A correctly signed body that is not a JSON object."""


@dataclass(frozen=True)
class Intake:
    """What the endpoint answers: a url_validation reply, or a stored (or repeated) event."""

    validation: dict[str, str] | None = None
    event_id: uuid.UUID | None = None
    tenant_id: uuid.UUID | None = None
    source_id: uuid.UUID | None = None
    new: bool = False


def _parse_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def receive(source_ref: str, body: bytes, timestamp: str | None, sig: str | None,
            *, now: float | None = None) -> Intake:
    """Verify one delivery and, for an event, store it raw and commit. Raises `Rejected` or
    `NotJson`; never logs the body."""
    now = time.time() if now is None else now
    source_id = _parse_id(source_ref)
    # A Core connection and statements built once: this runs for every event Zoom sends, and
    # building an ORM statement per request cost most of its CPU (bench/webhooks.py).
    with get_engine().begin() as conn:
        found = conn.execute(_SOURCE, {"id": source_id}).first() if source_id else None
        secret = webhook_secret(found[1]) if found is not None else None
        if not signature.verify(secret, timestamp, sig, body, now):
            raise Rejected
        assert found is not None
        assert source_id is not None
        assert secret is not None
        tenant_id = found[0]
        try:
            message = json.loads(body)
        except ValueError:
            raise NotJson from None
        if not isinstance(message, dict) or not isinstance(message.get("event"), str):
            raise NotJson
        payload = message.get("payload") if isinstance(message.get("payload"), dict) else {}
        if message["event"] == URL_VALIDATION:
            plain = payload.get("plainToken") if isinstance(payload, dict) else None
            if not isinstance(plain, str) or not plain:
                raise NotJson
            return Intake(validation=signature.url_validation(secret, plain))
        del secret
        event_id, new = _store(conn, tenant_id, source_id, message, body)
        _touch_source(conn, source_id)
        return Intake(event_id=event_id, tenant_id=tenant_id, source_id=source_id, new=new)


def _event_ts(message: dict[str, Any]) -> int | None:
    value = message.get("event_ts")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


_SOURCE = text("SELECT tenant_id, credentials_ciphertext FROM source WHERE id = :id"
               ).bindparams(bindparam("id", type_=Uuid())).columns(
    column("tenant_id", Uuid()), column("credentials_ciphertext", Text()))
# ON CONFLICT ... DO NOTHING RETURNING: the same text on Postgres and SQLite (>= 3.35).
_INSERT = text(
    "INSERT INTO webhook_event (id, tenant_id, source_id, event, event_ts, body_sha256, body, "
    "status, attempts, outcome, received_at) VALUES (:id, :tenant_id, :source_id, :event, "
    ":event_ts, :body_sha256, :body, :status, 0, '', :received_at) "
    "ON CONFLICT (source_id, body_sha256) DO NOTHING RETURNING id"
).bindparams(bindparam("id", type_=Uuid()), bindparam("tenant_id", type_=Uuid()),
             bindparam("source_id", type_=Uuid()), bindparam("received_at", type_=UTCDateTime())
             ).columns(column("id", Uuid()))
_EXISTING = text("SELECT id FROM webhook_event WHERE source_id = :source_id AND "
                 "body_sha256 = :body_sha256").bindparams(
    bindparam("source_id", type_=Uuid())).columns(column("id", Uuid()))


def _store(conn: Connection, tenant_id: uuid.UUID, source_id: uuid.UUID,
           message: dict[str, Any], body: bytes) -> tuple[uuid.UUID, bool]:
    """Insert the raw event unless the same body is already there (a retry of Zoom's)."""
    digest = hashlib.sha256(body).hexdigest()
    inserted = conn.execute(_INSERT, {
        "id": uuid.uuid4(), "tenant_id": tenant_id, "source_id": source_id,
        "event": str(message["event"])[:100], "event_ts": _event_ts(message),
        "body_sha256": digest, "body": body.decode("utf-8", errors="replace"),
        "status": WebhookStatus.PENDING, "received_at": utcnow(),
    }).scalar_one_or_none()
    if inserted is not None:
        return inserted, True
    existing = conn.execute(_EXISTING, {"source_id": source_id, "body_sha256": digest}).scalar_one()
    return existing, False


_touched: dict[uuid.UUID, float] = {}


def _touch_source(conn: Connection, source_id: uuid.UUID) -> None:
    # This process wrote it less than the resolution ago: skip the round trip.
    if time.monotonic() - _touched.get(source_id, -1e9) < LAST_SEEN_RESOLUTION.total_seconds():
        return
    _touched[source_id] = time.monotonic()
    now = utcnow()
    conn.execute(
        update(Source)
        .where(col(Source.id) == source_id,
               or_(col(Source.last_webhook_at).is_(None),
                   col(Source.last_webhook_at) < now - LAST_SEEN_RESOLUTION))
        .values(last_webhook_at=now)
    )


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
        while True:
            batch = [pending.get()]
            while len(batch) < 200:
                try:
                    batch.append(pending.get_nowait())
                except queue.Empty:
                    break
            if time.monotonic() < backoff_until:
                continue  # the broker was down a moment ago: leave these to the sweep
            sent = _send_grouped(batch)
            if sent is None or len(sent) < len(batch):
                backoff_until = time.monotonic() + BROKER_BACKOFF_SECONDS
            if sent:
                try:
                    with session_scope() as session:
                        _mark_sent(session, sent)
                except Exception:
                    log.warning("could not mark %d webhook events sent", len(sent),
                                exc_info=True)


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


def webhooks_since(session: Session, source_id: uuid.UUID) -> datetime | None:
    """Since when the source's webhooks report events: the earliest event (by Zoom's event_ts,
    or its arrival) the inbox holds, less a second (a sign-in's time has whole seconds).
    None: the source never received one."""
    first_received, first_ts = session.exec(
        select(func.min(WebhookEvent.received_at), func.min(WebhookEvent.event_ts))
        .where(WebhookEvent.source_id == source_id)
    ).one()
    received = as_utc(first_received)
    if received is None:
        return None
    if first_ts is not None:
        received = min(received, datetime.fromtimestamp(first_ts / 1000, UTC))
    return received - timedelta(seconds=1)
