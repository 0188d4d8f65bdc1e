"""Per-user daily summaries, recomputed from the stored activity rows for the days a chunk touched.

Recomputing (rather than incrementing) makes a re-run chunk a no-op and lets late data correct a
day. Definitions, per lower-cased email and UTC day:
- sign_ins: sign-in events that day (`worker.zoom.items.SIGN_IN_TYPES`, as api/insights counts);
- meetings_hosted: meetings whose host email is the user, by start day;
- meetings_attended: distinct meetings the user joined that day (hosts who joined included);
- meeting_minutes: the user's participant durations that day, summed, in whole minutes;
- last_activity_at: the latest sign-in/out, participant leave (or join) or hosted meeting end.
Users without an email (guests) have no summary. `details` links the Zoom account (of the
governance source in a split set-up) and its correlated identity when known.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import queue
import threading
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Uuid,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import BindParameter
from sqlmodel import Session, col

from worker.correlation.service import accounts_source_id
from worker.kit import sql
from worker.models import (
    AccountCorrelation,
    ActivityEvent,
    Meeting,
    MeetingParticipant,
    Source,
    UserDailySummary,
    ZoomUser,
    utcnow,
)
from worker.models.base import UTCDateTime
from worker.zoom.items import SIGN_IN_TYPES

log = logging.getLogger(__name__)


def _details(zoom_id: Any, identity_id: Any, dialect: str) -> Any:
    """`details` of a summary row: {} for an e-mail without a Zoom account, else the account's
    id and, when correlated, the identity's id as the canonical uuid string."""
    linked = sql.json_object(dialect, "user_zoom_id", zoom_id)
    both = sql.json_object(dialect, "user_zoom_id", zoom_id,
                           "identity_id", sql.uuid_text(identity_id, dialect))
    return case((zoom_id.is_(None), sql.empty_json_object(dialect)),
                (identity_id.is_(None), linked), else_=both)


def _day_runs(days: list[date]) -> list[tuple[date, date]]:
    """`days` (sorted) as runs of consecutive days, (first, last) each."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] == day - timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _in_runs(column: Any, runs: int) -> Any:
    """`column` (a timestamp) falls in one of ``runs`` ranges of whole UTC days, bound as
    ``from_i``/``until_i``: the (source, time) indexes answer them, and no day is computed per
    row."""
    ranges = [and_(column >= bindparam(f"from_{i}"), column < bindparam(f"until_{i}"))
              for i in range(runs)]
    return ranges[0] if len(ranges) == 1 else or_(*ranges)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def recompute(session: Session, source: Source, days: Iterable[date],
              emails: Iterable[str] | None = None) -> int:
    """Rewrite the summaries of `source` for `days` (of only `emails`, lower-cased, when
    given: a webhook's one user); returns rows written. Caller commits.

    One `DELETE` and one `INSERT ... SELECT ... GROUP BY`: the database aggregates, so the
    worker's memory does not grow with the events in the window (it used to hold a dict per
    user and day, bench/RESULTS.md section 2). Same on Postgres and SQLite (the demo)."""
    days = sorted(set(days))
    if not days:
        return 0
    # Serialise summary rewrites of one source: two chunks (sign-ins and meetings) finishing
    # together would each compute a day without the other's last page.
    sql.xact_lock(session, f"summary:{source.id}")
    runs = _day_runs(days)
    only = None if emails is None else sorted({e.lower() for e in emails})
    gone, rows = _statements(sql.dialect(session), len(runs), only is not None)
    params: dict[str, Any] = {"source_id": source.id, "tenant_id": source.tenant_id,
                              "accounts_source_id": accounts_source_id(source),
                              "now": utcnow(), "days": days}
    for i, (first, last) in enumerate(runs):
        params[f"from_{i}"] = _midnight(first)
        params[f"until_{i}"] = _midnight(last + timedelta(days=1))
    if only is not None:
        params["emails"] = only
    session.execute(gone, params)
    result: Any = session.execute(rows, params)
    return int(result.rowcount)


@functools.lru_cache(maxsize=64)
def _statements(dialect: str, runs: int, some_emails: bool) -> tuple[Any, Any]:
    """`recompute`'s DELETE and INSERT for ``runs`` ranges of days (of some e-mails only, or
    all), every value a bound parameter: built once per shape. Why: building the statement
    took the worker about 3 ms a call, and SQLAlchemy then walked it again for its cache key,
    at every recompute of a backfill's days (bench/RESULTS.md, issue 15, fifth round)."""
    zero = literal(0, BigInteger)
    source_id = bindparam("source_id", type_=Uuid())
    emails: BindParameter[Any] | None = (bindparam("emails", expanding=True) if some_emails
                                         else None)
    # Sign-in/out events: every event counts as activity, "Sign in" ones as sign-ins. Guests
    # are left out on the stored column (`!= ""` is false for NULL, and lower() never empties
    # an address), so that filter lower-cases no row. Some e-mails only (a webhook's user):
    # matched lower-cased, as they are grouped, so a stored "Ann@x.io" counts for ann@x.io
    # (the day's range has narrowed the rows by then).
    ev_email = func.lower(ActivityEvent.email)
    ev_day = sql.utc_day(ActivityEvent.time, dialect)
    events = (
        select(ev_email.label("email"), ev_day.label("day"),
               func.sum(case((func.lower(ActivityEvent.type).in_(SIGN_IN_TYPES), 1),
                             else_=0)).label("s"),
               zero.label("h"), zero.label("a"), zero.label("secs"),
               func.max(ActivityEvent.time).label("last"))
        .where(col(ActivityEvent.source_id) == source_id, _in_runs(ActivityEvent.time, runs),
               col(ActivityEvent.email) != "",
               *([] if emails is None else [ev_email.in_(emails)]))
        .group_by(ev_email, ev_day)
    )
    # Meetings hosted, by start day; activity until the latest end.
    host = func.lower(Meeting.host_email)
    m_day = sql.utc_day(Meeting.start_time, dialect)
    hosted = (
        select(host, m_day, zero, func.count(), zero, zero, func.max(Meeting.end_time))
        .where(col(Meeting.source_id) == source_id, _in_runs(Meeting.start_time, runs),
               col(Meeting.host_email) != "",
               *([] if emails is None else [host.in_(emails)]))
        .group_by(host, m_day)
    )
    # Attendance, by join day: distinct meetings, summed seconds, latest leave (else join).
    who = func.lower(MeetingParticipant.user_email)
    p_day = sql.utc_day(MeetingParticipant.join_time, dialect)
    attended = (
        select(who, p_day, zero, zero,
               func.count(func.distinct(MeetingParticipant.meeting_uuid)),
               func.sum(func.coalesce(MeetingParticipant.duration, 0)),
               func.coalesce(func.max(MeetingParticipant.leave_time),
                             func.max(MeetingParticipant.join_time)))
        .where(col(MeetingParticipant.source_id) == source_id,
               _in_runs(MeetingParticipant.join_time, runs),
               col(MeetingParticipant.user_email) != "",
               *([] if emails is None else [who.in_(emails)]))
        .group_by(who, p_day)
    )
    inputs = union_all(events, hosted, attended).subquery("inputs")
    per_day = (
        select(inputs.c.email, inputs.c.day,
               cast(func.sum(inputs.c.s), BigInteger).label("sign_ins"),
               cast(func.sum(inputs.c.h), BigInteger).label("hosted"),
               cast(func.sum(inputs.c.a), BigInteger).label("attended"),
               cast(func.sum(inputs.c.secs), BigInteger).label("secs"),
               func.max(inputs.c.last).label("last"))
        .group_by(inputs.c.email, inputs.c.day)
    ).subquery("per_day")
    target = bindparam("accounts_source_id", type_=Uuid())
    # One Zoom account per e-mail: among duplicates the lowest id, so every run picks the same.
    accounts = (
        select(func.lower(ZoomUser.email).label("email"), func.min(ZoomUser.zoom_id).label("zid"))
        .where(col(ZoomUser.source_id) == target, col(ZoomUser.deleted_at).is_(None))
        .group_by(func.lower(ZoomUser.email))
    ).subquery("accounts")
    corr = (
        select(col(AccountCorrelation.user_zoom_id), col(AccountCorrelation.identity_id))
        .where(col(AccountCorrelation.source_id) == target)
    ).subquery("corr")
    table = UserDailySummary.__table__  # type: ignore[attr-defined]
    rows = (
        select(bindparam("tenant_id", type_=table.c.tenant_id.type), source_id,
               per_day.c.email, per_day.c.day, per_day.c.sign_ins, per_day.c.hosted,
               per_day.c.attended, per_day.c.secs // 60, per_day.c.last,
               bindparam("now", type_=UTCDateTime()),
               _details(accounts.c.zid, corr.c.identity_id, dialect))
        .select_from(per_day)
        .outerjoin(accounts, accounts.c.email == per_day.c.email)
        .outerjoin(corr, corr.c.user_zoom_id == accounts.c.zid)
    )
    columns = ["tenant_id", "source_id", "email", "day", "sign_ins", "meetings_hosted",
               "meetings_attended", "meeting_minutes", "last_activity_at", "updated_at",
               "details"]
    # A plain INSERT: the DELETE has just removed every row it can write (same source, days
    # and e-mails), and the lock in `recompute` keeps other recomputes out until the commit,
    # so an ON CONFLICT would only add a speculative insertion per row.
    # SQLAlchemy reads an INSERT's rowcount only when asked to (an option set here: a new
    # statement object per call would be walked again for its cache key).
    insert = sql.insert_in(dialect, table).from_select(columns, rows).execution_options(
        preserve_rowcount=True)
    # Days recomputed from scratch: a user with no activity left that day loses the row. On
    # the table, not the model: no ORM session to synchronise (no summary is loaded here).
    gone = delete(table).where(table.c.source_id == source_id,
                               table.c.day.in_(bindparam("days", expanding=True)))
    if emails is not None:
        gone = gone.where(table.c.email.in_(emails))
    return gone, insert


# Closed days handed to the thread together: each recompute has a fixed cost in the worker
# (building the statement, ~5 ms); fewer, larger ones (bench/RESULTS.md, issue 15).
CLOSED_DAYS_PER_RECOMPUTE = 3


class Closing:
    """A sign-in chunk's day summaries, recomputed while the chunk still runs: once a batch
    of pages is committed, the days it wrote that the latest page does not reach are closed
    (Zoom lists sign-ins newest first, so the chunk has moved past them) and a thread
    recomputes them on its own connection. The chunk's last transaction then recomputes only
    the days left (`finish`): the latest day, the days without events, and any day a page
    wrote again after it was closed (Zoom's order is not relied on, only used).

    Why: at the chunk's end the summaries were one statement over the whole window, done
    while nothing else moved (a fifth of a backfill's wall time, bench/RESULTS.md); here they
    run beside the page writes. What a closed day's summary reads is committed, so it is
    what the last transaction would have computed for it, and a crash before the end leaves
    summaries of committed events only (the re-run recomputes every day). Postgres only: the
    demo's SQLite takes one writer at a time, and a session bound to one connection (a
    test's) cannot lend it to a thread; both recompute every day at the end, as before."""

    def __init__(self, session: Session, source_id: Any) -> None:
        bind = session.get_bind()
        self._engine = bind if isinstance(bind, Engine) and bind.dialect.name == "postgresql" \
            else None
        self._source_id = source_id
        self._open: set[date] = set()      # written, not yet handed to the thread
        self._latest: set[date] = set()    # the days of the latest page written
        self._handed: set[date] = set()
        self._again: set[date] = set()     # written again after they were handed
        self._done: set[date] = set()      # recomputed and committed by the thread
        self._queue: queue.SimpleQueue[set[date] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def written(self, days: set[date]) -> None:
        """A page wrote events of ``days`` (not committed yet)."""
        self._again |= days & self._handed
        self._open |= days - self._handed
        self._latest = days

    def committed(self) -> None:
        """What was written is committed: the days the chunk has moved past go to the thread."""
        closed = self._open - self._latest
        if self._engine is None or len(closed) < CLOSED_DAYS_PER_RECOMPUTE:
            return
        self._open -= closed
        self._handed |= closed
        if self._thread is None:
            self._thread = threading.Thread(target=contextvars.copy_context().run,
                                            args=(self._work,), name="summaries", daemon=True)
            self._thread.start()
        self._queue.put(closed)

    def finish(self) -> set[date]:
        """Wait for the thread; the days whose summaries it committed and no page wrote since
        (the last transaction need not recompute them). Safe to call more than once."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        return self._done - self._again

    def _work(self) -> None:
        assert self._engine is not None
        try:
            with Session(self._engine, expire_on_commit=False) as session:
                source = session.get_one(Source, self._source_id)
                session.commit()
                while self._recompute_next(session, source):
                    pass
        except Exception:  # what it has not done, the chunk's last transaction does
            log.warning("summaries of source %s not recomputed ahead any more; left to the "
                        "chunk's end", self._source_id, exc_info=True)

    def _recompute_next(self, session: Session, source: Source) -> bool:
        """Recompute the days handed next (and any handed meanwhile); False: no more."""
        days = self._queue.get()
        if days is None:
            return False
        # Days handed meanwhile go in the same statement: fewer, larger recomputes.
        more = True
        while more and not self._queue.empty():
            handed = self._queue.get()
            more = handed is not None
            days |= handed or set()
        try:
            recompute(session, source, days)
            # The chunk's last commit is synchronous and flushes this one's WAL.
            sql.without_flush_wait(session)
            session.commit()
            self._done |= days
        except Exception:  # the chunk's last transaction recomputes these days
            session.rollback()
            log.warning("summaries of %d closed day(s) of source %s not recomputed ahead; "
                        "left to the chunk's end", len(days), self._source_id, exc_info=True)
        return more
