"""One activity chunk: one stream of one source over one window (at most a calendar month).

Pages are upserted on natural keys, so re-running a chunk rewrites the same rows. The next page
is fetched (in a thread) while one is written; writes commit per batch of pages, once the next
page has arrived (`write_pages`); the last batch commits together with the stream's watermark,
the day summaries and the run record, so the watermark never covers uncommitted data. (A
sign-in chunk's summaries of the days it has moved past are recomputed before, beside its
writes: `summaries.Closing`.)
A meeting Zoom no longer has (3001, 12702, an HTML 403) is skipped and counted. A daily-cap 429
or a 429 storm ends the chunk `deferred` with a checkpoint; it resumes later, never reported as
`succeeded` with data missing. One chunk per (source, stream) at a time.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote

import redis
from sqlmodel import Session, select

from worker import clients
from worker.activity import handoff, readiness, summaries
from worker.activity.planner import day_start, heavy_reservation, hosts_of_part, release_held
from worker.db import session_scope
from worker.kit import sql
from worker.kit.prefetch import prefetching
from worker.kit.redis import get_redis
from worker.kit.upsert import Appending, Written, upsert
from worker.models import (
    ActivityEvent,
    DailyUsage,
    HostUsage,
    Meeting,
    MeetingParticipant,
    OperationLog,
    RunStatus,
    Source,
    Stream,
    StreamCursor,
    SyncRun,
    utcnow,
)
from worker.runs import lifecycle as runs
from worker.runs.followups import send_after_commit
from worker.runs.hold import Admit, Check, Hold, hold, no_check
from worker.runs.lifecycle import next_in_chain, roll_up
from worker.webhooks import reconcile
from worker.zoom import codes
from worker.zoom import items as zi
from worker.zoom.client import encode_meeting_uuid
from worker.zoom.errors import ZoomError, ZoomNotFound
from worker.zoom.reports import window_params

log = logging.getLogger(__name__)

class ZoomApi(Protocol):
    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def iter_pages(
        self, path: str, params: dict[str, Any] | None, items_key: str
    ) -> Iterator[Any]: ...


def event_key(source_id: uuid.UUID, item: dict[str, Any]) -> str:
    return zi.signin_key(source_id, item)


def participant_key(source_id: uuid.UUID, meeting_uuid: str, item: dict[str, Any]) -> str:
    who = item.get("id") or item.get("user_id") or item.get("name")
    return zi.key_hash(source_id, meeting_uuid, who, item.get("join_time"))


def operation_log_key(source_id: uuid.UUID, item: dict[str, Any]) -> str:
    return zi.key_hash(source_id, item.get("time"), item.get("operator"), item.get("category_type"),
                item.get("action"), item.get("operation_detail"))


@dataclass
class Chunk:
    """What a stream fetcher works with: ids, the window (inclusive dates), the open session
    and the run's counters. `commit()` commits the pages written so far before the next."""

    run_id: uuid.UUID
    tenant_id: uuid.UUID
    source_id: uuid.UUID
    stream: str
    first: date
    last: date
    session: Session
    client: ZoomApi
    check: Callable[[], None]
    checkpoint: dict[str, Any]
    pages: int = 0
    seen: int = 0
    skipped: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    days: set[date] | None = None
    warnings: zi.ItemWarnings = field(default_factory=zi.ItemWarnings)
    # The next chunk's first pages, fetched while this one ends (`handoff`).
    ahead: handoff.Ahead = handoff.NOTHING
    # The day summaries recomputed while the chunk runs (sign-ins only).
    closing: summaries.Closing | None = None
    # A COPY left open across the pages of a batch (sign-ins into an empty window).
    appending: Appending | None = None

    @property
    def params(self) -> dict[str, str]:
        return window_params((self.first, self.last))

    def parse(
        self, kind: str, items: list[dict[str, Any]],
        parse: Callable[[dict[str, Any], zi.Fields], dict[str, Any]],
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(item, row) of the usable items of a page; the others skipped, counted and noted."""
        before = self.warnings.count
        rows = zi.parse_items(kind, items, parse, self.warnings)
        self.skipped += self.warnings.count - before
        return rows

    def page_done(self, items: int) -> None:
        self.pages += 1
        self.seen += items

    def written(self, result: Written, *, immutable: bool = False) -> None:
        """Count what a page's upsert did: new rows, and rows already there (re-written, or
        left alone when immutable). SQLite cannot tell new from updated: nothing is counted."""
        if result.inserted is None:
            return
        self.inserted += result.inserted
        if immutable:
            self.unchanged += result.rows - result.inserted
        else:
            self.updated += result.rows - result.inserted

    def end_writes(self) -> None:
        """Close the open COPY, if any, and count what it wrote: before any other statement."""
        if self.appending is not None:
            self.written(self.appending.end(), immutable=True)

    def abort_writes(self) -> None:
        if self.appending is not None:
            self.appending.abort()

    def commit(self) -> None:
        """Commit what is written so far (with the progress so far on the run record)."""
        self.end_writes()
        run = self.session.get_one(SyncRun, self.run_id)
        run.pages, run.seen, run.skipped = self.pages, self.seen, self.skipped
        run.inserted, run.updated, run.unchanged = self.inserted, self.updated, self.unchanged
        run.checkpoint = dict(self.checkpoint)
        # The chunk's last commit (with the watermark) is synchronous and flushes this one.
        sql.without_flush_wait(self.session)
        self.session.commit()
        if self.closing is not None:
            self.closing.committed()
        self.check()

    def base(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "source_id": self.source_id}

    def summarized(self) -> set[date]:
        """The days whose summaries are already recomputed (waits for them; stops the thread
        that does it)."""
        return self.closing.finish() if self.closing is not None else set()


# Pages written per transaction: the run record's progress commits with them, so a crash
# loses at most this many pages (a re-run rewrites them: upserts on natural keys), while a
# commit per page made its flush and round trips a visible share of a chunk (bench/RESULTS.md).
COMMIT_EVERY_PAGES = 8
COMMIT_EVERY_SECONDS = 2.0
# Pages fetched ahead (in a thread) while one is written; memory stays at a few pages. More
# than one: a write slower than the limiter's slot (a commit, a loaded machine) no longer
# delays the next request, and the pages handed over by the chain's previous chunk
# (`handoff`) are written while this chunk's own requests already go out.
PREFETCH_PAGES = handoff.PAGES


R = TypeVar("R")


@dataclass
class Prepared(Generic[R]):
    """A page made ready for its write in the fetching thread: the rows of its usable items
    (as the stream's `write` takes them), and what their parse noted (merged into the chunk's
    when the page is written)."""

    items: int
    rows: R
    warnings: zi.ItemWarnings


def _prepared(pages: Iterator[Any], prepare: Callable[[list[dict[str, Any]], zi.ItemWarnings], R]
              ) -> Iterator[Prepared[R]]:
    try:
        for page in pages:
            warnings = zi.ItemWarnings()
            yield Prepared(len(page.items), prepare(page.items, warnings), warnings)
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()  # stops the paging when the loop stops early


def write_pages(chunk: Chunk, pages: Iterator[Any],
                prepare: Callable[[list[dict[str, Any]], zi.ItemWarnings], R],
                write: Callable[[R], None]) -> None:
    """The page loop of the paged streams: `write` each page's rows while the next pages are
    fetched and `prepare`d (parsed into rows) in a thread, so the parse of page n+1 runs while
    the database takes page n (the write is what sets a chunk's pace, bench/RESULTS.md). What
    is written commits, with the progress, once a batch of pages is written and the next page
    has arrived; the last batch commits with the stream's watermark (`_run`), so the
    watermark never covers uncommitted data. A page's warnings and skips count when it is
    written, so the progress committed never counts a page that is not."""
    pending, since = 0, time.monotonic()
    batch = sql.pages_per_commit(chunk.session, COMMIT_EVERY_PAGES)
    with prefetching(_prepared(pages, prepare), PREFETCH_PAGES) as ahead:
        for page in ahead:
            if pending >= batch or (
                    pending and time.monotonic() - since >= COMMIT_EVERY_SECONDS):
                chunk.commit()
                pending, since = 0, time.monotonic()
            elif pending:
                chunk.check()
            chunk.warnings.add(page.warnings)
            chunk.skipped += page.warnings.count
            write(page.rows)
            chunk.page_done(page.items)
            pending += 1


def fetch_signins(chunk: Chunk) -> None:
    start, end = day_start(chunk.first), day_start(chunk.last + timedelta(days=1))
    # A window nothing is stored in yet (a backfill's first pass): its events are written
    # straight into the table. A re-run after a crash finds the committed pages and takes
    # the ON CONFLICT path; the event key hashes the time, so only a row of these days could
    # collide.
    expect_new = not _events_between(chunk.session, chunk.source_id, start, end)
    if expect_new and sql.dialect(chunk.session) == "postgresql":
        # Its pages go through one COPY per batch, held open (ended by `Chunk.commit`).
        chunk.appending = Appending(chunk.session, ActivityEvent,
                                    conflict=("source_id", "event_key"), immutable=True)
    appending = chunk.appending
    base = chunk.base()
    closing = chunk.closing = summaries.Closing(chunk.session, chunk.source_id)

    def prepare(items: list[dict[str, Any]], warnings: zi.ItemWarnings
                ) -> tuple[list[dict[str, Any]], set[date]]:
        rows = []
        for item, row in zi.signin_rows(items, warnings, base):
            if not start <= row["time"] < end:
                # Zoom answered outside what was asked: another chunk owns those days.
                warnings.skip("sign_in", "outside the requested window", item)
                continue
            rows.append(row)
        return rows, {row["time"].astimezone(UTC).date() for row in rows}

    def write(page: tuple[list[dict[str, Any]], set[date]]) -> None:
        rows, days = page
        closing.written(days)
        if appending is not None and reconcile.append_signins(chunk.session, appending,
                                                              chunk.source_id, rows):
            return
        # Also merges the rows webhooks stored and counts what they missed (webhooks/).
        chunk.written(reconcile.store_signins(chunk.session, chunk.run_id, chunk.source_id,
                                              rows, expect_new=expect_new), immutable=True)

    path, redis_client = "/report/activities", get_redis()
    chunk.ahead = handoff.next_pages(chunk.session, redis_client, chunk.client, chunk.run_id,
                                     path, "activity_logs")
    write_pages(chunk, handoff.pages(redis_client, chunk.client, chunk.run_id, path,
                                     chunk.params, "activity_logs", then=chunk.ahead.start),
                prepare, write)


def _events_between(session: Session, source_id: uuid.UUID, start: datetime,
                    end: datetime) -> bool:
    """Whether the source has a sign-in event stored in [start, end)."""
    found = session.exec(select(ActivityEvent.id).where(
        ActivityEvent.source_id == source_id, ActivityEvent.time >= start,
        ActivityEvent.time < end).limit(1)).first()
    return found is not None


def fetch_host_usage(chunk: Chunk) -> None:
    # One row per user and calendar month (to date): re-running a month updates the same row.
    # The planner only gives this stream months wholly inside Zoom's six months
    # (worker.zoom.reports.earliest_report_month), so the 1st is never refused.
    period_start = chunk.first.replace(day=1)
    params = window_params((period_start, chunk.last), type="active")

    base = {**chunk.base(), "period_start": period_start, "period_end": chunk.last}

    def prepare(items: list[dict[str, Any]], warnings: zi.ItemWarnings
                ) -> list[dict[str, Any]]:
        return [{**base, **row}
                for _, row in zi.parse_items("host_usage", items, zi.parse_host_usage, warnings)]

    def write(rows: list[dict[str, Any]]) -> None:
        chunk.written(upsert(chunk.session, HostUsage, rows,
                             conflict=("source_id", "user_zoom_id", "period_start")))

    write_pages(chunk, chunk.client.iter_pages("/report/users", params, "users"), prepare,
                write)


def fetch_daily_usage(chunk: Chunk) -> None:
    # /report/daily answers a whole month; the planner's windows for this stream are months
    # wholly inside Zoom's six months, and only the window's days are kept.
    body = chunk.client.get("/report/daily", {"year": chunk.first.year,
                                              "month": chunk.first.month})
    dates = body.get("dates")
    items = [d for d in dates if isinstance(d, dict)] if isinstance(dates, list) else []
    rows = [{**chunk.base(), **row}
            for _, row in chunk.parse("daily_usage", items, zi.parse_daily)
            if chunk.first <= row["day"] <= chunk.last]
    chunk.written(upsert(chunk.session, DailyUsage, rows, conflict=("source_id", "day")))
    chunk.page_done(len(rows))


def fetch_operation_logs(chunk: Chunk) -> None:
    base, source_id = chunk.base(), chunk.source_id

    def prepare(items: list[dict[str, Any]], warnings: zi.ItemWarnings
                ) -> list[dict[str, Any]]:
        return [{**base, "log_key": operation_log_key(source_id, item), **row}
                for item, row in zi.parse_items("operation_log", items, zi.parse_operation_log,
                                                warnings)]

    def write(rows: list[dict[str, Any]]) -> None:
        chunk.written(upsert(chunk.session, OperationLog, rows,
                             conflict=("source_id", "log_key"), immutable=True),
                      immutable=True)

    write_pages(chunk, chunk.client.iter_pages("/report/operationlogs", chunk.params,
                                               "operation_logs"), prepare, write)


def fetch_meetings(chunk: Chunk) -> None:
    """Hosts of the window (from /report/users, active = hosted a meeting), then each host's
    meetings, then each meeting's participants. The checkpoint lists finished hosts, so a
    deferred chunk resumes where it stopped instead of paying the Heavy calls again."""
    hosts: list[str] = []
    for page in chunk.client.iter_pages("/report/users", {**chunk.params, "type": "active"},
                                        "users"):
        # The host's id is the path of the next call: a host without one cannot be asked.
        hosts.extend(row["user_zoom_id"]
                     for _, row in chunk.parse("host", page.items, zi.parse_host_usage))
        chunk.page_done(0)
    done: set[str] = set(chunk.checkpoint.get("hosts_done", []))
    for host_id in hosts_of_part(sorted(set(hosts)), chunk.checkpoint):
        if host_id in done:
            continue
        # userId is "the user ID or email address" (reportMeetings): a host keyed by e-mail
        # (no id) is asked for by it.
        path = f"/report/users/{quote(zi.user_ref(host_id), safe='')}/meetings"
        meetings: list[dict[str, Any]] = []
        try:
            for page in chunk.client.iter_pages(path, {**chunk.params, "type": "past"},
                                                "meetings"):
                meetings.extend(row for _, row in chunk.parse("meeting", page.items,
                                                              zi.parse_meeting))
                chunk.page_done(len(page.items))
        except ZoomNotFound:
            chunk.skipped += 1  # the host was deleted since the host list was made
            meetings = []
        rows = list({m["uuid"]: {**chunk.base(), **m, "host_zoom_id": host_id,
                                 "participants_status": "pending"} for m in meetings}.values())
        chunk.written(upsert(chunk.session, Meeting, rows, conflict=("source_id", "uuid")))
        for row in rows:
            row["participants_status"] = _fetch_participants(chunk, row["uuid"])
        if rows:
            upsert(chunk.session, Meeting, rows, conflict=("source_id", "uuid"))
        done.add(host_id)
        chunk.checkpoint["hosts_done"] = sorted(done)
        chunk.commit()
    chunk.checkpoint.pop("hosts_done", None)


def _fetch_participants(chunk: Chunk, meeting_uuid: str) -> str:
    # The UUID exactly as Zoom sent it (never cut), encoded as Zoom asks.
    path = f"/report/meetings/{encode_meeting_uuid(meeting_uuid)}/participants"
    try:
        for page in chunk.client.iter_pages(path, {}, "participants"):
            rows = [{**chunk.base(),
                     "participant_key": participant_key(chunk.source_id, meeting_uuid, item),
                     "meeting_uuid": meeting_uuid, **row}
                    for item, row in chunk.parse("participant", page.items,
                                                 zi.parse_participant)]
            chunk.written(upsert(chunk.session, MeetingParticipant, rows,
                                 conflict=("source_id", "participant_key")))
            chunk.page_done(len(page.items))
        return "fetched"
    except ZoomError as exc:
        # Gone (3001), too old (12702) or a Cloudflare HTML 403 (ZoomForbidden is a
        # ZoomNotFound): skip this meeting, count it, keep the chunk going.
        if isinstance(exc, ZoomNotFound) or codes.meeting_gone(exc.code):
            chunk.skipped += 1
            log.info("meeting %s skipped: %s", meeting_uuid, exc)
            return "gone"
        raise


FETCHERS: dict[str, Callable[[Chunk], None]] = {
    Stream.SIGNINS: fetch_signins,
    Stream.HOST_USAGE: fetch_host_usage,
    Stream.MEETINGS: fetch_meetings,
    Stream.DAILY_USAGE: fetch_daily_usage,
    Stream.OPERATION_LOGS: fetch_operation_logs,
}
# Streams whose rows feed the per-user daily summaries.
SUMMARY_STREAMS = {Stream.SIGNINS, Stream.MEETINGS}


def _default_client(source_id: uuid.UUID) -> ZoomApi:
    return clients.client_for_source(source_id)


def _after_failure(run_id: uuid.UUID, outcome: runs.Outcome) -> None:
    # A transient failure may still be retried by the task, which abandons the chain itself
    # when it gives up (`abandon_chain`).
    if outcome.status == RunStatus.FAILED:
        abandon_chain(run_id)


CHUNK = Hold(what="stream", lock_key=lambda run: f"ai:lock:activity:{run.source_id}:{run.stream}",
             around=lambda run, redis_client: heavy_reservation(run.id, redis_client),
             on_failure=_after_failure)


def run_chunk(
    run_id: uuid.UUID,
    *,
    client: ZoomApi | None = None,
    redis_client: redis.Redis | None = None,
    enqueue: bool = True,
    now: datetime | None = None,
    admit: Admit | None = None,
) -> SyncRun:
    """Fetch one chunk and commit it with its watermark (one chunk per source and stream at a
    time). Records the outcome on the run."""

    def body(session: Session, run: SyncRun, check: Check) -> None:
        fetch_chunk(session, run, client or _default_client(run.source_id), check)

    return hold(run_id, CHUNK, body, redis_client=redis_client, enqueue=enqueue, now=now,
                admit=admit)


def fetch_chunk(session: Session, run: SyncRun, client: ZoomApi,
                check: Check = no_check) -> SyncRun | None:
    """Fetch the chunk's window page by page (each page committed on ``session`` once the next
    has arrived), then in one transaction the last page, the stream's watermark, the day
    summaries and the finished run; queue the next chunk of the stream. Returns that chunk."""
    assert run.window_start is not None
    assert run.window_end is not None
    source_id, tenant_id, stream = run.source_id, run.tenant_id, str(run.stream)
    first, last = handoff.window_days(run)
    window_start, window_end = run.window_start, run.window_end
    chunk = Chunk(run_id=run.id, tenant_id=tenant_id, source_id=source_id, stream=stream,
                  first=first, last=last, session=session, client=client, check=check,
                  checkpoint=dict(run.checkpoint))
    try:
        FETCHERS[stream](chunk)
        chunk.end_writes()
        check()
    except BaseException:
        chunk.abort_writes()  # the session can roll back only once its COPY is given up
        raise
    finally:
        summarized = chunk.summarized()  # the summaries' thread stops with the chunk
    # The last page, the watermark, the summaries not recomputed yet and the run record
    # commit together.
    source = session.get_one(Source, source_id)
    if stream in SUMMARY_STREAMS:
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        summaries.recompute(session, source, [d for d in days if d not in summarized])
    cursor = session.get(StreamCursor, (source_id, stream), with_for_update=True)
    if cursor is None:
        cursor = StreamCursor(source_id=source_id, stream=stream, tenant_id=tenant_id)
        session.add(cursor)
    watermark = cursor.watermark
    if watermark is None or window_start <= watermark:
        # Only over contiguous windows: an explicit range far ahead must not skip a gap.
        cursor.watermark = max(window_end, watermark) if watermark else window_end
        cursor.updated_at = utcnow()
    session.refresh(run, with_for_update=True)
    run.pages, run.seen, run.skipped = chunk.pages, chunk.seen, chunk.skipped
    run.inserted, run.updated, run.unchanged = chunk.inserted, chunk.updated, chunk.unchanged
    run.checkpoint = {}
    runs.finish(run, RunStatus.SUCCEEDED,
                skipped_meetings=chunk.skipped - chunk.warnings.count,
                **chunk.warnings.details())
    if stream == Stream.SIGNINS:
        readiness.mark_if_ready(session, source)
    next_chunk = next_in_chain(session, run)
    chunk.ahead.wait()  # its pages stored before the commit sends the next chunk
    if next_chunk is not None:
        send_after_commit(session, next_chunk)
    if run.parent_id is not None:
        roll_up(session, run.parent_id)
    if next_chunk is None and stream == Stream.SIGNINS:
        # The sign-in chain is done: the report streams held for it may go. After the
        # roll-up, which waits for the plan's row: a plan still creating those reports (after
        # its sign-in chain was sent, `planner.plan`) has committed them by then.
        for held in release_held(session, get_redis(), utcnow(), source_id):
            send_after_commit(session, held)
    log.info("activity chunk %s %s %s..%s of %s: %d items (%d new), %d pages, %d skipped",
             run.id, stream, first, last, runs.where(source), chunk.seen, chunk.inserted,
             chunk.pages, chunk.skipped)
    return next_chunk


def abandon_chain(run_id: uuid.UUID) -> None:
    """A chunk failed: later windows of its stream must not run (the watermark would jump the
    gap). They end `retryable`; the next sync starts again from the watermark."""
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is None or run.parent_id is None:
            return
        later = next_in_chain(session, run)
        while later is not None:
            later.status = RunStatus.RETRYABLE
            later.finished_at = utcnow()
            later.error_message = (
                f"not run: the earlier chunk {run_id} of stream {run.stream} did not complete; "
                "the next sync resumes from the stream's watermark"
            )
            session.flush()
            later = next_in_chain(session, run)
        roll_up(session, run.parent_id)
