"""Activity sync against fakezoom: the plan's chunks, rows equal to the fake's reports,
idempotent re-runs, gone meetings skipped, and the daily cap deferring instead of skipping."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlmodel import col, select

from tests.factories import add_app_source
from tests.worker.helpers import (
    row_counts,
    stored_event_keys,
    stored_participant_keys,
    stored_summaries,
    truth_event_keys,
    truth_participant_keys,
    truth_summaries,
)
from worker.activity import planner
from worker.activity.planner import plan_activity
from worker.activity.service import run_chunk
from worker.db import session_scope
from worker.models import (
    Meeting,
    RunKind,
    RunStatus,
    Source,
    Stream,
    StreamCursor,
    SyncRun,
)
from worker.zoom.errors import ZoomRateLimited


def new_plan(source_id: uuid.UUID, **fields) -> uuid.UUID:
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        run = SyncRun(tenant_id=source.tenant_id, source_id=source_id, kind=RunKind.ACTIVITY,
                      **fields)
        session.add(run)
        return run.id


def children(plan_id: uuid.UUID) -> list[SyncRun]:
    with session_scope() as session:
        return list(session.exec(select(SyncRun).where(SyncRun.parent_id == plan_id)
                                 .order_by(col(SyncRun.window_start))))


def get_run(run_id: uuid.UUID) -> SyncRun:
    with session_scope() as session:
        return session.get_one(SyncRun, run_id)


def run_all(plan_id: uuid.UUID) -> None:
    """What the workers do: run queued chunks (each chain in window order) until none is left."""
    while True:
        queued = [c for c in children(plan_id) if c.status == RunStatus.QUEUED]
        if not queued:
            return
        for chunk in queued:
            run_chunk(chunk.id, enqueue=False)


def sync(source_id: uuid.UUID, **fields) -> uuid.UUID:
    plan_id = new_plan(source_id, **fields)
    plan_activity(plan_id, enqueue=False)
    run_all(plan_id)
    return plan_id


def test_a_first_sync_backfills_every_stream_and_matches_the_fake(zoom) -> None:
    account = zoom.fake.account(0)
    source_id = add_app_source(account, account.s2s_app)
    plan_id = sync(source_id)

    chunks = children(plan_id)
    assert {c.stream for c in chunks} == set(planner.STREAMS)
    for chunk in chunks:
        assert chunk.status == RunStatus.SUCCEEDED, (chunk.stream, chunk.error_message)
        # A chunk never spans more than a calendar month.
        assert chunk.window_start.month == (chunk.window_end - dt.timedelta(seconds=1)).month
    assert get_run(plan_id).status == RunStatus.SUCCEEDED
    assert stored_event_keys(source_id) == truth_event_keys(account, source_id)
    assert stored_participant_keys(source_id) == truth_participant_keys(account, source_id)
    assert stored_summaries(source_id) == truth_summaries(account)
    with session_scope() as session:
        cursors = session.exec(select(StreamCursor).where(
            StreamCursor.source_id == source_id)).all()
        assert {c.stream for c in cursors} == set(planner.STREAMS)
        assert all(c.watermark is not None for c in cursors)


def test_rerunning_a_sync_or_a_chunk_changes_no_row_count(zoom) -> None:
    account = zoom.fake.account(0)
    source_id = add_app_source(account, account.s2s_app)
    plan_id = sync(source_id)
    first = row_counts(source_id)
    assert first["ActivityEvent"] > 0
    assert first["MeetingParticipant"] > 0
    signin_chunks = [c for c in children(plan_id) if c.stream == Stream.SIGNINS]
    assert sum(c.inserted for c in signin_chunks) == first["ActivityEvent"]

    # The same chunk again (as after a redelivery of a finished chunk's message).
    for chunk in children(plan_id):
        with session_scope() as session:
            session.get_one(SyncRun, chunk.id).status = RunStatus.QUEUED
        run_chunk(chunk.id, enqueue=False)
    assert row_counts(source_id) == first
    # ...and its run record says so: nothing new, every sign-in already there.
    rerun = [c for c in children(plan_id) if c.stream == Stream.SIGNINS]
    assert sum(c.inserted for c in rerun) == 0
    assert sum(c.unchanged for c in rerun) == first["ActivityEvent"]
    # And a whole incremental sync (its windows overlap through the look-back).
    second = sync(source_id)
    assert get_run(second).status == RunStatus.SUCCEEDED
    assert row_counts(source_id) == first
    assert stored_summaries(source_id) == truth_summaries(account)


def test_a_gone_meeting_is_skipped_and_counted(zoom) -> None:
    account = zoom.fake.account(0)
    source_id = add_app_source(account, account.s2s_app)
    today = dt.datetime.now(dt.UTC).date()
    meetings = account.meetings(today - dt.timedelta(days=9), today)
    html_403 = meetings[0]["uuid"]
    zoom.fake.set_faults(html_403_meeting_uuid=html_403)
    plan_id = sync(source_id, details={"streams": [Stream.MEETINGS]})

    chunks = children(plan_id)
    assert all(c.status == RunStatus.SUCCEEDED for c in chunks)
    assert sum(c.skipped for c in chunks) == 1
    with session_scope() as session:
        meeting = session.exec(select(Meeting).where(Meeting.uuid == html_403)).one()
        assert meeting.participants_status == "gone"


@pytest.mark.usefixtures("pinned_clock")
def test_a_daily_cap_429_defers_the_chunk_with_its_checkpoint(zoom, monkeypatch) -> None:
    account = zoom.fake.account(0)
    source_id = add_app_source(account, account.s2s_app)
    plan_id = new_plan(source_id, details={"streams": [Stream.MEETINGS]})
    plan_activity(plan_id, enqueue=False)
    chunk = children(plan_id)[0]

    from worker.zoom.client import ZoomClient

    real_get = ZoomClient.get
    hosts_asked: set[str] = set()

    def capped(self, path, params=None):
        # The cap hits when the second host's meetings are asked for: the first host (all its
        # participants) is done by then, whatever the generated data of the day holds.
        if path.endswith("/meetings") and path.startswith("/report/users/"):
            hosts_asked.add(path)
            if len(hosts_asked) > 1:
                raise ZoomRateLimited("daily cap", 429, 429, daily=True)
        return real_get(self, path, params)

    monkeypatch.setattr(ZoomClient, "get", capped)
    with pytest.raises(ZoomRateLimited):
        run_chunk(chunk.id, enqueue=False)
    deferred = get_run(chunk.id)
    assert deferred.status == RunStatus.DEFERRED
    assert deferred.checkpoint["not_before"] > dt.datetime.now(dt.UTC).isoformat()
    assert deferred.checkpoint.get("hosts_done")  # progress kept for the resume
    assert get_run(plan_id).status == RunStatus.DEFERRED  # never "succeeded" with data missing
    with session_scope() as session:
        assert session.get(StreamCursor, (source_id, Stream.MEETINGS)) is None

    monkeypatch.setattr(ZoomClient, "get", real_get)
    with session_scope() as session:
        session.get_one(SyncRun, chunk.id).status = RunStatus.QUEUED
    run_chunk(chunk.id, enqueue=False)
    assert get_run(chunk.id).status == RunStatus.SUCCEEDED
    assert stored_participant_keys(source_id) == truth_participant_keys(account, source_id)


def test_the_planner_defers_what_does_not_fit_in_todays_heavy_budget(zoom) -> None:
    account = zoom.fake.account(0)
    # Business's 60,000 Heavy calls a day x 0.00005 = a budget of 3.
    source_id = add_app_source(account, account.s2s_app, rate_share=0.00005)
    plan_id = new_plan(source_id)
    plan_activity(plan_id, enqueue=False)
    statuses = [c.status for c in children(plan_id)]
    assert RunStatus.DEFERRED in statuses
    assert RunStatus.QUEUED in statuses
    deferred = [c for c in children(plan_id) if c.status == RunStatus.DEFERRED]
    assert all("daily cap" in (c.error_message or "") for c in deferred)
    assert get_run(plan_id).status == RunStatus.DEFERRED


@pytest.mark.usefixtures("pinned_clock")
def test_a_backfill_over_month_boundaries_is_split_into_month_chunks(zoom) -> None:
    account = zoom.fake.account(0)
    source_id = add_app_source(account, account.s2s_app)
    now = dt.datetime.now(dt.UTC)
    plan_id = new_plan(source_id, details={"streams": [Stream.SIGNINS]},
                       window_start=now - dt.timedelta(days=70), window_end=now)
    plan_activity(plan_id, enqueue=False)
    chunks = children(plan_id)
    assert len(chunks) >= 3
    # One chain per stream: only the earliest chunk is runnable first.
    assert [c.status for c in chunks].count(RunStatus.QUEUED) == len(chunks)
    assert planner.chain_heads(chunks) == [chunks[0]]
