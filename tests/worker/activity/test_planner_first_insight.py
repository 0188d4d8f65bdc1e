"""The plan sends its sign-in chain before it plans the other streams, and a plan stopped in
between is completed by its redelivery with the same chunks as one that was not."""

from __future__ import annotations

import collections
import datetime as dt
import uuid
from typing import Any

import pytest
from sqlmodel import col, select

from tests.factories import add_app_source as add_source
from tests.worker.activity.test_service import get_run, new_plan
from worker import dispatch
from worker.activity import planner
from worker.activity.planner import is_held, plan_activity
from worker.db import session_scope
from worker.models import RunStatus, Stream, SyncRun


def chunks(plan_id: uuid.UUID) -> list[SyncRun]:
    with session_scope() as session:
        return list(session.exec(select(SyncRun).where(SyncRun.parent_id == plan_id)
                                 .order_by(col(SyncRun.stream), col(SyncRun.window_start))))


def layout(plan_id: uuid.UUID) -> list[tuple[str, dt.datetime | None, dt.datetime | None,
                                             str, bool]]:
    return [(str(c.stream), c.window_start, c.window_end, str(c.status), is_held(c))
            for c in chunks(plan_id)]


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[tuple[uuid.UUID, collections.Counter[str]]]:
    """Each run sent, with the plan's chunks by stream committed at that moment."""
    seen: list[tuple[uuid.UUID, collections.Counter[str]]] = []

    def enqueue_run(run: SyncRun, *, countdown: float | None = None) -> str:  # noqa: ARG001
        with session_scope() as session:
            streams = session.exec(select(SyncRun.stream).where(
                SyncRun.parent_id == run.parent_id)).all() if run.parent_id else []
        seen.append((run.id, collections.Counter(str(s) for s in streams)))
        return str(run.id)

    monkeypatch.setattr(dispatch, "enqueue_run", enqueue_run)
    return seen


def test_the_sign_in_head_is_sent_before_the_other_streams_are_planned(zoom, sends) -> None:
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    plan_id = new_plan(source_id)
    plan_activity(plan_id)
    planned = chunks(plan_id)
    signins = [c for c in planned if c.stream == Stream.SIGNINS]
    head = min(signins, key=lambda c: c.window_start or dt.datetime.min)
    # Sent once, when only the sign-in chain was committed.
    assert [run_id for run_id, _ in sends] == [head.id]
    assert set(sends[0][1]) == {Stream.SIGNINS}
    assert sends[0][1][Stream.SIGNINS] == len(signins)
    # Then the other streams, held for the first insight; the plan's counts cover all of them.
    assert {c.stream for c in planned} == set(planner.STREAMS)
    others = [c for c in planner.chain_heads(planned) if c.stream != Stream.SIGNINS]
    assert others
    assert all(is_held(c) for c in others)
    plan = get_run(plan_id)
    assert plan.details["chunks"] == len(planned)
    assert planner.REST not in plan.details
    assert sorted(plan.details["held"]) == sorted(str(c.stream) for c in others)


@pytest.mark.usefixtures("sends")
def test_a_plan_stopped_after_its_sign_in_chain_is_completed_by_its_redelivery(
    zoom, monkeypatch
) -> None:
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    now = dt.datetime.now(dt.UTC)
    window = {"window_start": now - dt.timedelta(days=70), "window_end": now}
    whole = new_plan(source_id, **window)
    plan_activity(whole, now=now)

    create = planner._create_chunks
    calls = []

    def stopped_after_the_sign_ins(*args: Any, **kwargs: Any) -> list[SyncRun]:
        calls.append(args[-1])
        if len(calls) == 2:
            raise SystemExit("worker killed while planning the other streams")
        return create(*args, **kwargs)

    monkeypatch.setattr(planner, "_create_chunks", stopped_after_the_sign_ins)
    stopped = new_plan(source_id, **window)
    with pytest.raises(SystemExit):
        plan_activity(stopped, now=now)
    # The sign-in chain is committed (and sent); the rest is recorded as still to plan.
    assert {c.stream for c in chunks(stopped)} == {Stream.SIGNINS}
    assert get_run(stopped).details[planner.REST]
    assert get_run(stopped).status == RunStatus.QUEUED  # handed back, to be delivered again

    monkeypatch.setattr(planner, "_create_chunks", create)
    plan_activity(stopped, now=now)
    # The same chunks as the plan that was not stopped, none twice.
    assert layout(stopped) == layout(whole)
    assert planner.REST not in get_run(stopped).details
    assert get_run(stopped).details["chunks"] == get_run(whole).details["chunks"]
