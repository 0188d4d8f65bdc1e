"""One activity chunk: one stream of one source over one window (at most a calendar month).

Pages are upserted on natural keys, so re-running a chunk rewrites the same rows. Each page's
writes commit when the next page has arrived; the last page commits together with the stream's
watermark, the day summaries and the run record, so the watermark never covers uncommitted data.
A meeting Zoom no longer has (3001, 12702, an HTML 403) is skipped and counted. A daily-cap 429
or a 429 storm ends the chunk `deferred` with a checkpoint; it resumes later, never reported as
`succeeded` with data missing. One chunk per (source, stream) at a time.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import redis
from sqlmodel import Session

from worker import clients
from worker.activity import summaries
from worker.aggregation.service import parse_time
from worker.db import session_scope
from worker.kit.upsert import Written, upsert
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
from worker.runs.followups import send_after_commit, stamp
from worker.runs.lifecycle import next_in_chain, roll_up
from worker.zoom.client import encode_meeting_uuid
from worker.zoom.errors import ZoomError, ZoomNotFound

log = logging.getLogger(__name__)

# Zoom's answers for a meeting whose participants cannot be had any more.
GONE_MEETING_CODES = {"3001", "12702"}


class ZoomApi(Protocol):
    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def iter_pages(
        self, path: str, params: dict[str, Any] | None, items_key: str
    ) -> Iterator[Any]: ...


def _sha(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()
                          ).hexdigest()


def event_key(source_id: uuid.UUID, item: dict[str, Any]) -> str:
    return _sha(source_id, str(item.get("email") or "").lower(), item.get("time"),
                item.get("type"), item.get("ip_address"), item.get("client_type"),
                item.get("version"))


def participant_key(source_id: uuid.UUID, meeting_uuid: str, item: dict[str, Any]) -> str:
    who = item.get("id") or item.get("user_id") or item.get("name")
    return _sha(source_id, meeting_uuid, who, item.get("join_time"))


def operation_log_key(source_id: uuid.UUID, item: dict[str, Any]) -> str:
    return _sha(source_id, item.get("time"), item.get("operator"), item.get("category_type"),
                item.get("action"), item.get("operation_detail"))


def _s(value: Any, limit: int) -> str:
    return ("" if value is None else str(value))[:limit]


@dataclass
class Chunk:
    """What a stream fetcher works with: ids, the window (inclusive dates), the open session
    and the run's counters. `commit()` commits the previous page before the next is written."""

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

    @property
    def params(self) -> dict[str, str]:
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}

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

    def commit(self) -> None:
        """Commit what is written so far (with the progress so far on the run record)."""
        run = self.session.get_one(SyncRun, self.run_id)
        run.pages, run.seen, run.skipped = self.pages, self.seen, self.skipped
        run.inserted, run.updated, run.unchanged = self.inserted, self.updated, self.unchanged
        run.checkpoint = dict(self.checkpoint)
        self.session.commit()
        self.check()

    def base(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "source_id": self.source_id}


def fetch_signins(chunk: Chunk) -> None:
    pending = False
    for page in chunk.client.iter_pages("/report/activities", chunk.params, "activity_logs"):
        if pending:
            chunk.commit()
        rows = []
        for item in page.items:
            when = parse_time(item.get("time"))
            if when is None:
                continue
            rows.append({
                **chunk.base(), "event_key": event_key(chunk.source_id, item),
                "email": _s(item.get("email"), 320).lower(), "time": when,
                "type": _s(item.get("type"), 32),
                "ip_address": item.get("ip_address") or None,
                "client_type": item.get("client_type") or None,
                "version": item.get("version") or None,
            })
        chunk.written(upsert(chunk.session, ActivityEvent, rows,
                             conflict=("source_id", "event_key"), immutable=True),
                      immutable=True)
        chunk.page_done(len(page.items))
        pending = True


def fetch_host_usage(chunk: Chunk) -> None:
    # One row per user and calendar month (to date): re-running a month updates the same row.
    period_start = chunk.first.replace(day=1)
    params = {"from": period_start.isoformat(), "to": chunk.last.isoformat(), "type": "active"}
    pending = False
    for page in chunk.client.iter_pages("/report/users", params, "users"):
        if pending:
            chunk.commit()
        rows = [
            {**chunk.base(), "user_zoom_id": str(item["id"]),
             "email": _s(item.get("email"), 320), "period_start": period_start,
             "period_end": chunk.last, "meetings": int(item.get("meetings") or 0),
             "participants": int(item.get("participants") or 0),
             "meeting_minutes": int(item.get("meeting_minutes") or 0),
             "last_client_version": item.get("last_client_version") or None}
            for item in page.items if item.get("id")
        ]
        chunk.written(upsert(chunk.session, HostUsage, rows,
                             conflict=("source_id", "user_zoom_id", "period_start")))
        chunk.page_done(len(page.items))
        pending = True


def fetch_daily_usage(chunk: Chunk) -> None:
    body = chunk.client.get("/report/daily", {"year": chunk.first.year,
                                              "month": chunk.first.month})
    rows = []
    for item in body.get("dates") or []:
        try:
            day = date.fromisoformat(str(item.get("date")))
        except ValueError:
            continue
        if chunk.first <= day <= chunk.last:
            rows.append({**chunk.base(), "day": day,
                         "new_users": int(item.get("new_users") or 0),
                         "meetings": int(item.get("meetings") or 0),
                         "participants": int(item.get("participants") or 0),
                         "meeting_minutes": int(item.get("meeting_minutes") or 0)})
    chunk.written(upsert(chunk.session, DailyUsage, rows, conflict=("source_id", "day")))
    chunk.page_done(len(rows))


def fetch_operation_logs(chunk: Chunk) -> None:
    pending = False
    for page in chunk.client.iter_pages("/report/operationlogs", chunk.params, "operation_logs"):
        if pending:
            chunk.commit()
        rows = []
        for item in page.items:
            when = parse_time(item.get("time"))
            if when is None:
                continue
            rows.append({**chunk.base(), "log_key": operation_log_key(chunk.source_id, item),
                         "time": when, "operator": _s(item.get("operator"), 320),
                         "category_type": _s(item.get("category_type"), 100),
                         "action": _s(item.get("action"), 200),
                         "operation_detail": _s(item.get("operation_detail"), 4000)})
        chunk.written(upsert(chunk.session, OperationLog, rows,
                             conflict=("source_id", "log_key"), immutable=True),
                      immutable=True)
        chunk.page_done(len(page.items))
        pending = True


def fetch_meetings(chunk: Chunk) -> None:
    """Hosts of the window (from /report/users, active = hosted a meeting), then each host's
    meetings, then each meeting's participants. The checkpoint lists finished hosts, so a
    deferred chunk resumes where it stopped instead of paying the Heavy calls again."""
    hosts: list[dict[str, Any]] = []
    for page in chunk.client.iter_pages("/report/users", {**chunk.params, "type": "active"},
                                        "users"):
        hosts.extend(i for i in page.items if i.get("id"))
        chunk.page_done(0)
    done: set[str] = set(chunk.checkpoint.get("hosts_done", []))
    for host in sorted(hosts, key=lambda h: str(h["id"])):
        host_id = str(host["id"])
        if host_id in done:
            continue
        path = f"/report/users/{host_id}/meetings"
        meetings: list[dict[str, Any]] = []
        try:
            for page in chunk.client.iter_pages(path, {**chunk.params, "type": "past"},
                                                "meetings"):
                meetings.extend(page.items)
                chunk.page_done(len(page.items))
        except ZoomNotFound:
            chunk.skipped += 1  # the host was deleted since the host list was made
            meetings = []
        rows = [_meeting_row(chunk, host_id, m) for m in meetings if m.get("uuid")]
        chunk.written(upsert(chunk.session, Meeting, rows, conflict=("source_id", "uuid")))
        for row in rows:
            row["participants_status"] = _fetch_participants(chunk, row["uuid"])
        if rows:
            upsert(chunk.session, Meeting, rows, conflict=("source_id", "uuid"))
        done.add(host_id)
        chunk.checkpoint["hosts_done"] = sorted(done)
        chunk.commit()
    chunk.checkpoint.pop("hosts_done", None)


def _meeting_row(chunk: Chunk, host_id: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        **chunk.base(), "uuid": _s(item["uuid"], 128), "meeting_id": _s(item.get("id"), 32),
        "host_zoom_id": host_id, "host_email": _s(item.get("user_email"), 320).lower(),
        "topic": _s(item.get("topic"), 500), "type": item.get("type"),
        "start_time": parse_time(item.get("start_time")),
        "end_time": parse_time(item.get("end_time")), "duration": item.get("duration"),
        "total_minutes": item.get("total_minutes"),
        "participants_count": item.get("participants_count"),
        "participants_status": "pending",
    }


def _fetch_participants(chunk: Chunk, meeting_uuid: str) -> str:
    path = f"/report/meetings/{encode_meeting_uuid(meeting_uuid)}/participants"
    try:
        for page in chunk.client.iter_pages(path, {}, "participants"):
            rows = []
            for item in page.items:
                rows.append({
                    **chunk.base(),
                    "participant_key": participant_key(chunk.source_id, meeting_uuid, item),
                    "meeting_uuid": meeting_uuid,
                    "participant_id": _s(item.get("id"), 64) or None,
                    "user_id": _s(item.get("user_id"), 64) or None,
                    "name": _s(item.get("name"), 400),
                    "user_email": _s(item.get("user_email"), 320).lower(),
                    "join_time": parse_time(item.get("join_time")),
                    "leave_time": parse_time(item.get("leave_time")),
                    "duration": item.get("duration"),
                    "status": item.get("status") or None,
                })
            chunk.written(upsert(chunk.session, MeetingParticipant, rows,
                                 conflict=("source_id", "participant_key")))
            chunk.page_done(len(page.items))
        return "fetched"
    except ZoomError as exc:
        # Gone (3001), too old (12702) or a Cloudflare HTML 403 (ZoomForbidden is a
        # ZoomNotFound): skip this meeting, count it, keep the chunk going.
        if isinstance(exc, ZoomNotFound) or str(exc.code) in GONE_MEETING_CODES:
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


def run_chunk(
    run_id: uuid.UUID,
    *,
    client: ZoomApi | None = None,
    redis_client: redis.Redis | None = None,
    enqueue: bool = True,
    now: datetime | None = None,
) -> SyncRun:
    """Fetch one chunk and commit it with its watermark. Records the outcome on the run."""
    now = now or utcnow()
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is None:
            raise LookupError(f"sync run {run_id} does not exist")
        if run.status in runs.TERMINAL:
            return run
        not_before = run.checkpoint.get("not_before")
        if run.status == RunStatus.DEFERRED and not_before and \
                datetime.fromisoformat(not_before) > now:
            return run  # a stale delivery: the dispatcher resumes it when the time comes
        source_id, tenant_id, stream = run.source_id, run.tenant_id, str(run.stream)
    lock = runs.run_lock(redis_client, f"ai:lock:activity:{source_id}:{stream}", run_id)
    if not lock.acquire():
        raise runs.AlreadyRunning(
            f"stream {stream} of this source is busy (run {lock.holder()}); will try again")

    def after_failure(outcome: runs.Outcome) -> None:
        # A transient failure may still be retried by the task, which abandons the chain
        # itself when it gives up (`abandon_chain`).
        if outcome.status == RunStatus.FAILED:
            abandon_chain(run_id)

    with runs.working(run_id, lock, "stream", after_failure) as check:
        run, _ = _run(run_id, tenant_id, source_id, stream, client, check, enqueue)
    return run


def _run(
    run_id: uuid.UUID,
    tenant_id: uuid.UUID,
    source_id: uuid.UUID,
    stream: str,
    client: ZoomApi | None,
    check: Callable[[], None],
    enqueue: bool = True,
) -> tuple[SyncRun, SyncRun | None]:
    with session_scope() as session:
        run = session.get_one(SyncRun, run_id)
        runs.begin(session, run)
        checkpoint = {k: v for k, v in run.checkpoint.items() if k not in ("not_before",
                                                                          "reason")}
        run.checkpoint = checkpoint
        assert run.window_start is not None and run.window_end is not None
        first = run.window_start.astimezone(UTC).date()
        last = (run.window_end.astimezone(UTC) - timedelta(microseconds=1)).date()
        window_start, window_end = run.window_start, run.window_end
    client = client or _default_client(source_id)
    with session_scope() as session:
        chunk = Chunk(run_id=run_id, tenant_id=tenant_id, source_id=source_id, stream=stream,
                      first=first, last=last, session=session, client=client, check=check,
                      checkpoint=dict(checkpoint))
        FETCHERS[stream](chunk)
        check()
        # The last page, the watermark, the summaries and the run record commit together.
        source = session.get_one(Source, source_id)
        if stream in SUMMARY_STREAMS:
            days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
            summaries.recompute(session, source, days)
        cursor = session.get(StreamCursor, (source_id, stream), with_for_update=True)
        if cursor is None:
            cursor = StreamCursor(source_id=source_id, stream=stream, tenant_id=tenant_id)
            session.add(cursor)
        watermark = cursor.watermark
        if watermark is None or window_start <= watermark:
            # Only over contiguous windows: an explicit range far ahead must not skip a gap.
            cursor.watermark = max(window_end, watermark) if watermark else window_end
            cursor.updated_at = utcnow()
        run = session.get_one(SyncRun, run_id, with_for_update=True)
        run.pages, run.seen, run.skipped = chunk.pages, chunk.seen, chunk.skipped
        run.inserted, run.updated, run.unchanged = chunk.inserted, chunk.updated, chunk.unchanged
        run.checkpoint = {}
        runs.finish(run, RunStatus.SUCCEEDED, skipped_meetings=chunk.skipped)
        next_chunk = next_in_chain(session, run)
        if next_chunk is not None and enqueue:
            send_after_commit(session, next_chunk)
        elif next_chunk is not None:
            stamp(next_chunk)
        if run.parent_id is not None:
            roll_up(session, run.parent_id)
        log.info("activity chunk %s %s %s..%s of %s: %d items (%d new), %d pages, %d skipped",
                 run_id, stream, first, last, runs.where(source), chunk.seen, chunk.inserted,
                 chunk.pages, chunk.skipped)
    return run, next_chunk


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
