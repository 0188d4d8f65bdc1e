"""The sign-in pull's look-back shrinks while the source's webhooks are healthy (recent, and the
last reconciliation found nothing missed), never below the safe minimum, and reverts when they
are not; the planner plans the shorter window."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select

from tests.factories import make_source, make_tenant
from worker.activity.planner import plan_activity
from worker.db import session_scope
from worker.models import RunKind, RunStatus, Source, Stream, StreamCursor, SyncRun
from worker.settings import get_settings
from worker.webhooks.lookback import HEALTHY_WITHIN, SAFE_MINIMUM_HOURS, lookback_hours

NOW = dt.datetime(2026, 12, 1, 20, 0, tzinfo=dt.UTC)


@pytest.fixture
def source_id(clean_db: Any) -> uuid.UUID:  # noqa: ARG001 - requested for its side effect
    with session_scope() as session:
        return make_source(session, make_tenant(session)).id


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def set_hours(hours: int) -> None:
        monkeypatch.setenv("AI_ACTIVITY_LOOKBACK_HOURS", str(hours))
        get_settings.cache_clear()

    yield set_hours
    monkeypatch.undo()
    get_settings.cache_clear()


def webhook_at(source_id: uuid.UUID, when: dt.datetime | None) -> None:
    with session_scope() as session:
        session.get_one(Source, source_id).last_webhook_at = when


def reconciled(source_id: uuid.UUID, *missed: int | None, finished: dt.datetime = NOW) -> None:
    """A finished activity plan whose sign-in chunks counted `missed` (None: not counted)."""
    with session_scope() as session:
        tenant_id = session.get_one(Source, source_id).tenant_id
        plan = SyncRun(tenant_id=tenant_id, source_id=source_id, kind=RunKind.ACTIVITY,
                       status=RunStatus.SUCCEEDED, finished_at=finished)
        session.add(plan)
        session.flush()
        for n in missed:
            session.add(SyncRun(
                tenant_id=tenant_id, source_id=source_id, parent_id=plan.id,
                kind=RunKind.ACTIVITY, stream=Stream.SIGNINS, status=RunStatus.SUCCEEDED,
                finished_at=finished, details={} if n is None else {"missed_by_webhook": n}))


def hours(source_id: uuid.UUID, stream: str = Stream.SIGNINS) -> int:
    with session_scope() as session:
        return lookback_hours(session, source_id, stream, NOW)


def test_the_look_back_shrinks_only_while_webhooks_are_healthy(source_id: uuid.UUID) -> None:
    full = get_settings().activity_lookback_hours
    assert full == 48
    assert hours(source_id) == full  # never a webhook
    reconciled(source_id, 0, 0, finished=NOW - dt.timedelta(hours=20))
    assert hours(source_id) == full  # reconciled, but no webhook has arrived
    webhook_at(source_id, NOW - dt.timedelta(hours=1))
    assert hours(source_id) == 12  # healthy: a quarter of the setting
    assert hours(source_id, Stream.MEETINGS) == full  # no webhook behind the other streams
    webhook_at(source_id, NOW - HEALTHY_WITHIN - dt.timedelta(minutes=1))
    assert hours(source_id) == full  # the webhooks went quiet
    webhook_at(source_id, NOW - dt.timedelta(hours=1))
    reconciled(source_id, 0, 1, finished=NOW - dt.timedelta(hours=2))
    assert hours(source_id) == full  # the latest reconciliation found one missed
    reconciled(source_id, 0, finished=NOW - dt.timedelta(hours=1))
    assert hours(source_id) == 12  # the next clean one shrinks it again
    reconciled(source_id, None, finished=NOW - dt.timedelta(minutes=30))
    assert hours(source_id) == full  # a pull that did not count misses proves nothing


def test_the_shrunk_look_back_keeps_the_safe_minimum_and_never_exceeds_the_setting(
    source_id: uuid.UUID, configured: Any
) -> None:
    webhook_at(source_id, NOW - dt.timedelta(hours=1))
    reconciled(source_id, 0)
    configured(8)
    assert hours(source_id) == SAFE_MINIMUM_HOURS
    configured(4)
    assert hours(source_id) == 4
    configured(96)
    assert hours(source_id) == 24


def signin_window_start(source_id: uuid.UUID, redis_client: Any) -> dt.datetime:
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        session.merge(StreamCursor(source_id=source_id, stream=Stream.SIGNINS,
                                   tenant_id=source.tenant_id,
                                   watermark=NOW - dt.timedelta(hours=1)))
        plan = SyncRun(tenant_id=source.tenant_id, source_id=source_id, kind=RunKind.ACTIVITY,
                       details={"streams": [Stream.SIGNINS]})
        session.add(plan)
    plan_activity(plan.id, now=NOW, redis_client=redis_client, enqueue=False)
    with session_scope() as session:
        starts = session.exec(select(SyncRun.window_start).where(
            SyncRun.parent_id == plan.id, SyncRun.stream == Stream.SIGNINS)).all()
    first = min(s for s in starts if s is not None)
    return first.astimezone(dt.UTC)


def test_the_planner_pulls_the_shorter_window_while_webhooks_are_healthy(
    source_id: uuid.UUID, redis_client: Any
) -> None:
    watermark = NOW - dt.timedelta(hours=1)
    unhealthy = signin_window_start(source_id, redis_client)
    assert unhealthy.date() == (watermark - dt.timedelta(hours=48)).date()
    webhook_at(source_id, NOW - dt.timedelta(minutes=5))
    reconciled(source_id, 0, finished=NOW - dt.timedelta(minutes=1))
    healthy = signin_window_start(source_id, redis_client)
    assert healthy.date() == (watermark - dt.timedelta(hours=12)).date()
    assert healthy > unhealthy
