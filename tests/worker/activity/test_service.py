"""Activity sync against fakezoom: the plan's chunks, rows equal to the fake's reports,
idempotent re-runs, gone meetings skipped, and the daily cap deferring instead of skipping.

The plan and the chunks are tested on their plain bodies (`planner.plan`, `fetch_chunk`) with a
rolled-back session and a client of the fake app; a chunk deferred by Zoom's daily cap goes
through the entry points (the hold records the deferral) on committed rows."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import redis
from sqlmodel import Session, col, select

from fakezoom.server import FakeZoomServer
from tests.factories import add_app_source
from tests.worker.helpers import (
    BACKFILL_DAYS,
    WORKER_SETTINGS,
    fake_config,
    row_counts,
    stored_event_keys,
    stored_participant_keys,
    stored_summaries,
    straight_copies,
    truth_event_keys,
    truth_participant_keys,
    truth_sign_in_summaries,
    truth_summaries,
    zoom_client,
)
from worker.activity import planner
from worker.activity.planner import plan_activity
from worker.activity.service import fetch_chunk, run_chunk
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


class Activity:
    """One source of a fake app, planned and fetched by the plain bodies on the test's
    session, the way the workers run them (each chain in window order)."""

    def __init__(self, session: Session, server: FakeZoomServer, redis_client: redis.Redis,
                 **fields: Any) -> None:
        account = server.fake.account(0)
        self.session, self.redis = session, redis_client
        self.source_id = add_app_source(account, account.s2s_app, session=session, **fields)
        self.client = zoom_client(server, account.s2s_app, self.source_id)

    def plan(self, **fields: Any) -> SyncRun:
        source = self.session.get_one(Source, self.source_id)
        run = SyncRun(tenant_id=source.tenant_id, source_id=self.source_id,
                      kind=RunKind.ACTIVITY, **fields)
        self.session.add(run)
        self.session.flush()
        planner.plan(self.session, run, self.redis)
        self.session.commit()
        return run

    def children(self, plan: SyncRun) -> list[SyncRun]:
        return list(self.session.exec(select(SyncRun).where(SyncRun.parent_id == plan.id)
                                      .order_by(col(SyncRun.window_start))))

    def fetch(self, chunk: SyncRun) -> None:
        fetch_chunk(self.session, chunk, self.client)
        self.session.commit()

    def sync(self, **fields: Any) -> SyncRun:
        plan = self.plan(**fields)
        while True:
            queued = [c for c in self.children(plan) if c.status == RunStatus.QUEUED]
            if not queued:
                return plan
            for chunk in queued:
                self.fetch(chunk)


@pytest.fixture
def activity(session: Session, fake_zoom: FakeZoomServer, redis_client: redis.Redis
             ) -> Activity:
    return Activity(session, fake_zoom, redis_client)


def test_a_first_sync_backfills_every_stream_and_matches_the_fake(
        activity: Activity, fake_zoom: FakeZoomServer, session: Session) -> None:
    account = fake_zoom.fake.account(0)
    source_id = activity.source_id
    plan = activity.sync()

    chunks = activity.children(plan)
    assert {c.stream for c in chunks} == set(planner.STREAMS)
    for chunk in chunks:
        assert chunk.status == RunStatus.SUCCEEDED, (chunk.stream, chunk.error_message)
        # A chunk never spans more than a calendar month.
        assert chunk.window_start.month == (chunk.window_end - dt.timedelta(seconds=1)).month
    assert plan.status == RunStatus.SUCCEEDED
    assert stored_event_keys(source_id, session) == truth_event_keys(account, source_id)
    assert stored_participant_keys(source_id, session) == \
        truth_participant_keys(account, source_id)
    assert stored_summaries(source_id, session) == truth_summaries(account)
    cursors = session.exec(select(StreamCursor).where(
        StreamCursor.source_id == source_id)).all()
    assert {c.stream for c in cursors} == set(planner.STREAMS)
    assert all(c.watermark is not None for c in cursors)


def test_rerunning_a_sync_or_a_chunk_changes_no_row_count(
        activity: Activity, fake_zoom: FakeZoomServer, session: Session) -> None:
    account = fake_zoom.fake.account(0)
    source_id = activity.source_id
    plan = activity.sync()
    first = row_counts(source_id, session)
    assert first["ActivityEvent"] > 0
    assert first["MeetingParticipant"] > 0
    signin_chunks = [c for c in activity.children(plan) if c.stream == Stream.SIGNINS]
    assert sum(c.inserted for c in signin_chunks) == first["ActivityEvent"]

    # The same chunk again (as after a redelivery of a finished chunk's message).
    for chunk in activity.children(plan):
        activity.fetch(chunk)
    assert row_counts(source_id, session) == first
    # ...and its run record says so: nothing new, every sign-in already there.
    rerun = [c for c in activity.children(plan) if c.stream == Stream.SIGNINS]
    assert sum(c.inserted for c in rerun) == 0
    assert sum(c.unchanged for c in rerun) == first["ActivityEvent"]
    # And a whole incremental sync (its windows overlap through the look-back).
    second = activity.sync()
    assert second.status == RunStatus.SUCCEEDED
    assert row_counts(source_id, session) == first
    assert stored_summaries(source_id, session) == truth_summaries(account)


def test_a_backfill_cut_short_after_a_commit_resumes_to_the_same_rows(
        session: Session, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A window nothing is stored in takes the straight COPY (pages of Zoom's 300 items); the
    chunk dies after its first page committed; run again, it finds that page and takes the ON
    CONFLICT path: the rows are the fake's all the same, the re-run counting only the rest."""
    from tests.env import settings_pointed_at
    from worker.activity import service

    straight = straight_copies(monkeypatch)
    monkeypatch.setattr(service, "COMMIT_EVERY_PAGES", 1)

    class Died(Exception):
        pass

    def die() -> None:
        raise Died

    config = fake_config(users=400, days=BACKFILL_DAYS, accounts=1)
    with FakeZoomServer(config) as server, settings_pointed_at(server, **WORKER_SETTINGS):
        account = server.fake.account(0)
        activity = Activity(session, server, redis_client)
        plan = activity.plan(details={"streams": [Stream.SIGNINS]})
        chunk = activity.children(plan)[-1]
        with pytest.raises(Died):
            fetch_chunk(session, chunk, activity.client, die)
        session.rollback()  # the worker's uncommitted pages are gone with it
        assert straight == ["copy"]
        kept = len(stored_event_keys(activity.source_id, session))
        assert kept > 100
        straight.clear()
        activity.fetch(chunk)
        assert straight == []  # its window holds a committed page now
        for run in activity.children(plan):
            if run.id != chunk.id:
                activity.fetch(run)
        # The other window, still empty, went straight in.
        assert straight
        assert all(step == "copy" for step in straight)
        assert stored_event_keys(activity.source_id, session) == \
            truth_event_keys(account, activity.source_id)
        resumed = session.get_one(SyncRun, chunk.id)
        assert resumed.inserted + kept == resumed.seen - resumed.skipped


def test_a_gone_meeting_is_skipped_and_counted(
        activity: Activity, fake_zoom: FakeZoomServer, session: Session) -> None:
    account = fake_zoom.fake.account(0)
    today = dt.datetime.now(dt.UTC).date()
    meetings = account.meetings(today - dt.timedelta(days=9), today)
    html_403 = meetings[0]["uuid"]
    fake_zoom.fake.set_faults(html_403_meeting_uuid=html_403)
    plan = activity.sync(details={"streams": [Stream.MEETINGS]})

    chunks = activity.children(plan)
    assert all(c.status == RunStatus.SUCCEEDED for c in chunks)
    assert sum(c.skipped for c in chunks) == 1
    meeting = session.exec(select(Meeting).where(Meeting.source_id == activity.source_id,
                                                 Meeting.uuid == html_403)).one()
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


def test_the_planner_defers_what_does_not_fit_in_todays_heavy_budget(
        session: Session, fake_zoom: FakeZoomServer, redis_client: redis.Redis) -> None:
    # Business's 60,000 Heavy calls a day x 0.00005 = a budget of 3.
    activity = Activity(session, fake_zoom, redis_client, rate_share=0.00005)
    plan = activity.plan()
    statuses = [c.status for c in activity.children(plan)]
    assert RunStatus.DEFERRED in statuses
    assert RunStatus.QUEUED in statuses
    deferred = [c for c in activity.children(plan) if c.status == RunStatus.DEFERRED]
    assert all("daily cap" in (c.error_message or "") for c in deferred)
    assert plan.status == RunStatus.DEFERRED


@pytest.mark.usefixtures("pinned_clock")
def test_a_backfill_over_month_boundaries_is_split_into_month_chunks(activity: Activity
                                                                       ) -> None:
    now = dt.datetime.now(dt.UTC)
    plan = activity.plan(details={"streams": [Stream.SIGNINS]},
                         window_start=now - dt.timedelta(days=70), window_end=now)
    chunks = activity.children(plan)
    assert len(chunks) >= 3
    # One chain per stream: only the earliest chunk is runnable first.
    assert [c.status for c in chunks].count(RunStatus.QUEUED) == len(chunks)
    assert planner.chain_heads(chunks) == [chunks[0]]


class _Recomputes:
    """Every `summaries.recompute` of a sign-in sync, by the thread it ran in; `fail_ahead`
    makes the ones of the summaries' thread fail (a lost connection, say)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, fail_ahead: bool = False) -> None:
        import threading

        from worker.activity import summaries

        self.ahead: list[set[dt.date]] = []
        self.at_end: list[set[dt.date]] = []
        recompute = summaries.recompute

        def spied(session: Session, source: Source, days: Any, emails: Any = None) -> int:
            days = set(days)
            if threading.current_thread().name == "summaries":
                self.ahead.append(days)
                if fail_ahead:
                    raise RuntimeError("connection lost")
            else:
                self.at_end.append(days)
            return recompute(session, source, days, emails)

        monkeypatch.setattr(summaries, "recompute", spied)


def _sign_in_backfill(monkeypatch: pytest.MonkeyPatch, *, pages_order: Any = None,
                      fail_ahead: bool = False) -> tuple[_Recomputes, Any, uuid.UUID]:
    """A 400-user account's sign-in backfill run by the entry point (its own committed
    session, as a worker runs it), one page a commit; returns the recomputes seen."""
    from tests.env import settings_pointed_at
    from worker.activity import service
    from worker.zoom.client import ZoomClient

    monkeypatch.setattr(service, "COMMIT_EVERY_PAGES", 1)
    if pages_order is not None:
        # Zoom's order changed: the pages of each window come in ``pages_order``. No pages
        # handed over between chunks (they would be the reordered first ones).
        monkeypatch.setattr(service.handoff, "next_pages",
                            lambda *_a, **_k: service.handoff.NOTHING)
        iter_pages = ZoomClient.iter_pages

        def reordered(self: ZoomClient, path: str, params: Any, items_key: str) -> Any:
            pages = list(iter_pages(self, path, params, items_key))
            return iter(pages_order(pages) if path == "/report/activities" else pages)

        monkeypatch.setattr(ZoomClient, "iter_pages", reordered)
    spy = _Recomputes(monkeypatch, fail_ahead=fail_ahead)
    config = fake_config(users=400, days=BACKFILL_DAYS, accounts=1)
    with FakeZoomServer(config) as server, settings_pointed_at(server, **WORKER_SETTINGS):
        account = server.fake.account(0)
        source_id = add_app_source(account, account.s2s_app)
        plan_id = new_plan(source_id, details={"streams": [Stream.SIGNINS]})
        plan_activity(plan_id, enqueue=False)
        for chunk in children(plan_id):
            assert run_chunk(chunk.id, enqueue=False).status == RunStatus.SUCCEEDED
        assert {key: sums[0] for key, sums in stored_summaries(source_id).items()} == \
            truth_sign_in_summaries(account)
    return spy, account, source_id


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_a_sign_in_chunk_recomputes_the_days_it_has_moved_past_while_it_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Zoom lists sign-ins newest first: each day is recomputed once, most of them by the
    summaries' thread while later pages are written, the rest in the chunk's last
    transaction; the summaries are the fake's either way."""
    spy, _, _ = _sign_in_backfill(monkeypatch)
    ahead = set().union(*spy.ahead)
    at_end = set().union(*spy.at_end)
    assert len(ahead) >= BACKFILL_DAYS // 2
    assert not ahead & at_end  # no day recomputed twice
    assert all(len(days) < 31 for days in spy.at_end)


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_a_day_written_again_after_it_was_recomputed_is_recomputed_at_the_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages out of Zoom's order (first, last, second, second to last...): days come back after
    they were closed; the chunk's end recomputes them, and the summaries stay right."""
    def interleaved(pages: list[Any]) -> list[Any]:
        out = []
        while pages:
            out.append(pages.pop(0))
            if pages:
                out.append(pages.pop())
        return out

    spy, _, _ = _sign_in_backfill(monkeypatch, pages_order=interleaved)
    assert set().union(*spy.ahead) & set().union(*spy.at_end)


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_summaries_the_thread_could_not_recompute_are_recomputed_at_the_end(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="worker.activity.summaries"):
        spy, _, source_id = _sign_in_backfill(monkeypatch, fail_ahead=True)
    assert spy.ahead
    assert set().union(*spy.ahead) <= set().union(*spy.at_end)
    assert f"source {source_id} not recomputed ahead" in caplog.text
