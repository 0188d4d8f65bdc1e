"""Webhook intake in the API process: verify Zoom's signature, store the raw event, commit.

Deliveries are written by group commit: the requests of one API process hand their delivery to
the process's writer threads (WRITERS) and wait; a free writer takes whatever has arrived
meanwhile and verifies and stores it in one transaction, so a burst costs one source lookup,
one multi-row insert and one commit (the disk flush) rather than one of each per event.
Nothing waits for a batch to fill: at a low rate each event is its own batch, and at a high one
the batch is what arrived while the previous commit was flushing. Every request is still
answered only after its own row is committed; a batch that fails is written again one delivery
at a time, so one bad delivery fails only its own request.

Nothing of a body is logged or stored before its signature holds; what is stored afterwards is
the raw body, for the worker to parse. New events go to `inbox.send_soon` after the commit
(the request never waits on the broker).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Text, Uuid, bindparam, column, or_, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert
from sqlmodel import col

from worker.db import get_engine
from worker.kit import sql
from worker.models import Source, WebhookEvent, WebhookStatus, utcnow
from worker.sources.service import webhook_secret
from worker.webhooks import inbox, signature

log = logging.getLogger(__name__)

URL_VALIDATION = "endpoint.url_validation"
# last_webhook_at is a health hint: one write per source per this interval at most.
LAST_SEEN_RESOLUTION = timedelta(seconds=5)
# Writer threads per API process: while one waits for its commit, another takes the requests
# that arrived meanwhile (a commit is mostly waiting for Postgres, not Python).
WRITERS = 2
# Deliveries one transaction takes at most (a multi-row insert of a few hundred KB).
GROUP_MAX = 200
# Deliveries waiting for the writer in one API process; beyond, the request answers 503 and
# Zoom retries it (the database is not keeping up: waiting longer would miss the 3 s anyway).
GROUP_QUEUE = 5_000


class Rejected(Exception):
    """Unknown source, bad signature or stale timestamp: one answer for all (no probing)."""


class NotJson(Exception):
    """A correctly signed body that is not a JSON object."""


class Busy(Exception):
    """The process's intake queue is full; the caller answers 503 (Zoom retries)."""


@dataclass(frozen=True)
class Delivery:
    """One request as Zoom sent it; `received` (epoch seconds) is what the replay window is
    measured against."""

    source_ref: str
    body: bytes = field(repr=False)
    timestamp: str | None
    signature: str | None = field(repr=False)
    received: float


@dataclass(frozen=True)
class Intake:
    """What the endpoint answers: a url_validation reply, or a stored (or repeated) event."""

    validation: dict[str, str] | None = None
    event_id: uuid.UUID | None = None
    tenant_id: uuid.UUID | None = None
    source_id: uuid.UUID | None = None
    new: bool = False


Outcome = Intake | Rejected | NotJson


def _parse_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def receive(source_ref: str, body: bytes, timestamp: str | None, sig: str | None,
            *, now: float | None = None) -> Intake:
    """Verify one delivery and, for an event, store it raw and commit. Raises `Rejected` or
    `NotJson`; never logs the body."""
    delivery = Delivery(source_ref, body, timestamp, sig, time.time() if now is None else now)
    outcome = receive_many([delivery])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def receive_many(deliveries: list[Delivery]) -> list[Outcome]:
    """Verify a batch of deliveries and store their events in one transaction; one outcome
    per delivery, in order. Raises only when the transaction fails (nothing is stored then)."""
    with get_engine().begin() as conn:
        return _receive(conn, deliveries)


# Statements built once: this runs for every event Zoom sends, and building a statement per
# request cost most of its CPU (bench/webhooks.py).
_SOURCES = text("SELECT id, tenant_id, credentials_ciphertext FROM source WHERE id IN :ids"
                ).bindparams(bindparam("ids", expanding=True, type_=Uuid())).columns(
    column("id", Uuid()), column("tenant_id", Uuid()), column("credentials_ciphertext", Text()))
_EXISTING = text("SELECT id, source_id, body_sha256 FROM webhook_event WHERE source_id IN "
                 ":sources AND body_sha256 IN :digests").bindparams(
    bindparam("sources", expanding=True, type_=Uuid()),
    bindparam("digests", expanding=True)).columns(
    column("id", Uuid()), column("source_id", Uuid()), column("body_sha256", Text()))
_INSERTS: dict[str, Insert] = {}


def _insert(dialect: str) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id, run as one multi-row statement for a
    list of rows (SQLAlchemy's insertmanyvalues); the same on Postgres and SQLite."""
    stmt = _INSERTS.get(dialect)
    if stmt is None:
        table = WebhookEvent.__table__  # type: ignore[attr-defined]
        stmt = sql.insert_in(dialect, table).on_conflict_do_nothing(
            index_elements=["source_id", "body_sha256"]).returning(table.c.id)
        _INSERTS[dialect] = stmt
    return stmt


def _event_ts(message: dict[str, Any]) -> int | None:
    value = message.get("event_ts")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _receive(conn: Connection, deliveries: list[Delivery]) -> list[Outcome]:
    wanted = {i for i in (_parse_id(d.source_ref) for d in deliveries) if i is not None}
    sources: dict[uuid.UUID, tuple[uuid.UUID, str | None]] = {}
    if wanted:
        for source_id, tenant_id, ciphertext in conn.execute(_SOURCES, {"ids": list(wanted)}):
            # Decrypted once per batch and source, dropped with the batch.
            sources[source_id] = (tenant_id, webhook_secret(ciphertext))
    outcomes: list[Outcome | None] = []
    rows: list[dict[str, Any]] = []
    for delivery in deliveries:
        source_id = _parse_id(delivery.source_ref)
        tenant_id, secret = sources.get(source_id, (None, None)) if source_id else (None, None)
        if not signature.verify(secret, delivery.timestamp, delivery.signature, delivery.body,
                                delivery.received):
            outcomes.append(Rejected())
            continue
        assert source_id is not None
        assert tenant_id is not None
        assert secret is not None
        try:
            message = json.loads(delivery.body)
        except ValueError:
            outcomes.append(NotJson())
            continue
        if not isinstance(message, dict) or not isinstance(message.get("event"), str):
            outcomes.append(NotJson())
            continue
        if message["event"] == URL_VALIDATION:
            payload = message.get("payload")
            plain = payload.get("plainToken") if isinstance(payload, dict) else None
            outcomes.append(Intake(validation=signature.url_validation(secret, plain))
                            if isinstance(plain, str) and plain else NotJson())
            continue
        outcomes.append(None)  # filled in once stored
        rows.append({
            "id": uuid.uuid4(), "tenant_id": tenant_id, "source_id": source_id,
            "event": str(message["event"])[:100], "event_ts": _event_ts(message),
            "body_sha256": hashlib.sha256(delivery.body).hexdigest(),
            "body": delivery.body.decode("utf-8", errors="replace"),
            "status": WebhookStatus.PENDING, "attempts": 0, "outcome": "",
            "received_at": utcnow(), "enqueued_at": None, "processed_at": None,
        })
    stored = iter(_store(conn, rows))
    _touch_sources(conn, {r["source_id"] for r in rows})
    return [o if o is not None else next(stored) for o in outcomes]


def _store(conn: Connection, rows: list[dict[str, Any]]) -> list[Intake]:
    """Insert the raw events; a body already stored for its source (a retry of Zoom's, or
    the same delivery twice in this batch) answers the stored row's id, not new."""
    if not rows:
        return []
    inserted = set(conn.execute(_insert(conn.dialect.name), rows).scalars())
    existing: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
    repeats = [r for r in rows if r["id"] not in inserted]
    if repeats:
        found = conn.execute(_EXISTING, {"sources": list({r["source_id"] for r in repeats}),
                                         "digests": list({r["body_sha256"] for r in repeats})})
        existing = {(s, d): i for i, s, d in found}
    out = []
    for r in rows:
        new = r["id"] in inserted
        event_id = r["id"] if new else existing[(r["source_id"], r["body_sha256"])]
        out.append(Intake(event_id=event_id, tenant_id=r["tenant_id"],
                          source_id=r["source_id"], new=new))
    return out


_touched: dict[uuid.UUID, float] = {}


def _touch_sources(conn: Connection, source_ids: set[uuid.UUID]) -> None:
    # This process wrote it less than the resolution ago: skip the round trip.
    due = [s for s in source_ids
           if time.monotonic() - _touched.get(s, -1e9) >= LAST_SEEN_RESOLUTION.total_seconds()]
    if not due:
        return
    for s in due:
        _touched[s] = time.monotonic()
    now = utcnow()
    conn.execute(
        update(Source)
        .where(col(Source.id).in_(due),
               or_(col(Source.last_webhook_at).is_(None),
                   col(Source.last_webhook_at) < now - LAST_SEEN_RESOLUTION))
        .values(last_webhook_at=now)
    )


# --- group commit -------------------------------------------------------------------------

Done = Callable[[Outcome | BaseException], None]


def _write(deliveries: list[Delivery]) -> list[Outcome | BaseException]:
    """One transaction for the batch; if it fails, one per delivery, so only the deliveries
    that fail on their own get the error."""
    try:
        return list(receive_many(deliveries))
    except Exception as exc:
        if len(deliveries) == 1:
            return [exc]
        log.warning("webhook intake: a batch of %d failed (%s); writing them one by one",
                    len(deliveries), type(exc).__name__)
    out: list[Outcome | BaseException] = []
    for delivery in deliveries:
        try:
            out.extend(receive_many([delivery]))
        except Exception as exc:
            out.append(exc)
    return out


class _GroupCommit:
    """The writer threads of one API process (started on first use, again in a forked
    child), taking from one queue."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[Delivery, Done]] = queue.Queue(maxsize=GROUP_QUEUE)
        self.pid: int | None = None
        self.lock = threading.Lock()

    def submit(self, delivery: Delivery, done: Done) -> None:
        with self.lock:
            if self.pid != os.getpid():
                self.pid = os.getpid()
                self.queue = queue.Queue(maxsize=GROUP_QUEUE)
                for n in range(WRITERS):
                    threading.Thread(target=self._run, args=(self.queue,), daemon=True,
                                     name=f"webhook-intake-{n}").start()
        try:
            self.queue.put_nowait((delivery, done))
        except queue.Full:
            raise Busy from None

    @staticmethod
    def _run(waiting: queue.Queue[tuple[Delivery, Done]]) -> None:
        while True:
            batch = [waiting.get()]
            while len(batch) < GROUP_MAX:
                try:
                    batch.append(waiting.get_nowait())
                except queue.Empty:
                    break
            outcomes = _write([d for d, _ in batch])
            for (_, done), outcome in zip(batch, outcomes, strict=True):
                try:
                    done(outcome)
                except Exception:  # the request's loop is gone (server stopping); go on
                    log.debug("webhook intake: a request was gone before its answer")
                if isinstance(outcome, Intake) and outcome.new:
                    assert outcome.event_id
                    assert outcome.tenant_id
                    assert outcome.source_id
                    inbox.send_soon(outcome.event_id, outcome.tenant_id, outcome.source_id)


_group = _GroupCommit()


def _settle(future: asyncio.Future[Intake], outcome: Outcome | BaseException) -> None:
    if future.done():  # the request went away (client gone); its row stands
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


async def receive_soon(source_ref: str, body: bytes, timestamp: str | None, sig: str | None
                       ) -> Intake:
    """`receive` through this process's group commit: returns once the delivery's row is
    committed (or raises as `receive` does, or `Busy`)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Intake] = loop.create_future()

    def done(outcome: Outcome | BaseException) -> None:
        loop.call_soon_threadsafe(_settle, future, outcome)

    _group.submit(Delivery(source_ref, body, timestamp, sig, time.time()), done)
    return await future
