"""Group commit of webhook intake against Postgres: one transaction answers every delivery of
a batch on its own terms, and a batch that fails is retried delivery by delivery."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from tests.factories import make_source, make_tenant
from tests.webhook_signing import event_body, sign_in_object, signed_headers
from tests.worker.webhooks.test_service import SECRET, with_secret
from worker.db import session_scope
from worker.models import WebhookEvent
from worker.webhooks import intake

pytestmark = pytest.mark.usefixtures("clean_db")


def _source() -> uuid.UUID:
    with session_scope() as session:
        source_id = make_source(session, make_tenant(session)).id
    with_secret(source_id)
    return source_id


def _delivery(source_ref: str, body: bytes, secret: str = SECRET,
              timestamp: int | None = None) -> intake.Delivery:
    headers = signed_headers(secret, body, timestamp)
    return intake.Delivery(source_ref, body, headers["x-zm-request-timestamp"],
                           headers["x-zm-signature"], time.time())


def _stored() -> int:
    with session_scope() as session:
        return int(session.exec(select(func.count()).select_from(WebhookEvent)).one())


def _sign_in(n: int) -> bytes:
    return event_body("user.signed_in", sign_in_object(f"u{n}@acme.example",
                                                       f"2026-12-01T09:00:{n:02d}Z"))


def test_one_batch_answers_each_delivery_as_if_it_came_alone() -> None:
    source_id = _source()
    ref = str(source_id)
    first, second = _sign_in(1), _sign_in(2)
    stale = int(time.time()) - 301
    outcomes = intake.receive_many([
        _delivery(ref, first),
        _delivery(ref, first),  # Zoom's retry, in the same batch
        _delivery(ref, second, secret="forged"),
        _delivery(ref, second, timestamp=stale),
        _delivery(str(uuid.uuid4()), second),  # no such source
        _delivery("not-a-uuid", second),
        _delivery(ref, b"[1, 2]"),
        _delivery(ref, event_body("endpoint.url_validation", {})
                  .replace(b'"object": {}', b'"plainToken": "abc"')),
        _delivery(ref, second),
    ])
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds == ["Intake", "Intake", "Rejected", "Rejected", "Rejected", "Rejected",
                     "NotJson", "Intake", "Intake"]
    stored, repeat, _, _, _, _, _, validation, other = outcomes
    assert isinstance(stored, intake.Intake)
    assert isinstance(repeat, intake.Intake)
    assert isinstance(validation, intake.Intake)
    assert isinstance(other, intake.Intake)
    assert stored.new
    assert not repeat.new
    assert repeat.event_id == stored.event_id
    assert other.new
    assert other.event_id != stored.event_id
    assert validation.validation is not None
    assert validation.validation["plainToken"] == "abc"
    assert _stored() == 2
    # Delivered again in a later batch: the stored rows answer, nothing is added.
    again = intake.receive_many([_delivery(ref, second), _delivery(ref, first)])
    assert [o.event_id for o in again if isinstance(o, intake.Intake)] == [
        other.event_id, stored.event_id]
    assert not any(o.new for o in again if isinstance(o, intake.Intake))
    assert _stored() == 2


def test_a_failing_batch_is_written_one_delivery_at_a_time(monkeypatch: Any) -> None:
    source_id = _source()
    good, bad = _delivery(str(source_id), _sign_in(1)), _delivery(str(source_id), _sign_in(2))
    real = intake.receive_many

    def receive_many(deliveries: list[intake.Delivery]) -> list[intake.Outcome]:
        if bad in deliveries:
            raise RuntimeError("database refused")
        return real(deliveries)

    monkeypatch.setattr(intake, "receive_many", receive_many)
    outcomes = intake._write([good, bad])
    assert isinstance(outcomes[0], intake.Intake)
    assert outcomes[0].new
    assert isinstance(outcomes[1], RuntimeError)
    assert _stored() == 1


def test_concurrent_requests_are_answered_after_their_rows_are_committed(
    monkeypatch: Any
) -> None:
    source_id = _source()
    sent: list[uuid.UUID] = []
    monkeypatch.setattr(intake.inbox, "send_soon", lambda event_id, *_: sent.append(event_id))
    bodies = [_sign_in(n) for n in range(30)]

    async def post_all() -> list[intake.Intake]:
        calls = []
        for body in [*bodies, bodies[0]]:
            headers = signed_headers(SECRET, body)
            calls.append(intake.receive_soon(str(source_id), body,
                                             headers["x-zm-request-timestamp"],
                                             headers["x-zm-signature"]))
        return list(await asyncio.gather(*calls))

    answers = asyncio.run(post_all())
    ids = [a.event_id for a in answers]
    assert len(set(ids)) == len(bodies)
    assert ids[-1] == ids[0]
    with session_scope() as session:
        committed = set(session.exec(select(WebhookEvent.id)))
    assert set(ids) == committed  # each answer came after its commit
    # Sent once each, after their commit; the repeat is not sent again.
    deadline = time.monotonic() + 10
    while len(sent) < len(bodies) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(sent) == sorted(set(ids))

    with pytest.raises(intake.Rejected):
        asyncio.run(intake.receive_soon(str(source_id), bodies[1], str(int(time.time())),
                                        "v0=forged"))


def test_a_full_intake_queue_refuses_at_once_rather_than_wait(monkeypatch: Any) -> None:
    release = threading.Event()
    taken: list[int] = []

    def stuck(deliveries: list[intake.Delivery]) -> list[Any]:
        taken.append(len(deliveries))
        release.wait(30)  # the database does not answer
        return [intake.Rejected() for _ in deliveries]

    monkeypatch.setattr(intake, "_write", stuck)
    monkeypatch.setattr(intake, "GROUP_QUEUE", 1)
    monkeypatch.setattr(intake, "_group", intake._GroupCommit())
    answered: list[Any] = []
    delivery = _delivery(str(uuid.uuid4()), _sign_in(1))
    try:
        for n in range(intake.WRITERS):  # each writer takes one and hangs
            intake._group.submit(delivery, answered.append)
            deadline = time.monotonic() + 10
            while len(taken) < n + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert taken == [1] * intake.WRITERS
        intake._group.submit(delivery, answered.append)  # waits in the queue
        with pytest.raises(intake.Busy):
            intake._group.submit(delivery, answered.append)
    finally:
        release.set()
    deadline = time.monotonic() + 10
    while len(answered) < intake.WRITERS + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(answered) == intake.WRITERS + 1  # the ones accepted are answered in the end
