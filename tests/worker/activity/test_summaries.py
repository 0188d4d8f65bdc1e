"""summaries.recompute, in SQL, against the Python loop it replaced (kept here as the oracle):
every column, on Postgres and on SQLite (the demo), including days left without any input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete
from sqlmodel import Session, SQLModel, col, select

from tests.factories import make_source, make_tenant
from worker.activity import summaries
from worker.models import (
    AccountCorrelation,
    ActivityEvent,
    Identity,
    Meeting,
    MeetingParticipant,
    Source,
    UserDailySummary,
    ZoomUser,
)
from worker.models.base import as_utc

D1, D2, D3, D4 = (date(2024, 3, d) for d in (10, 11, 12, 13))
EST = timezone(timedelta(hours=-5))


def at(day: date, hour: int, minute: int = 0, tz: timezone = UTC) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)


def reference(session: Session, source: Source, days: list[date]) -> dict[tuple, tuple]:
    """The summaries the pre-SQL implementation wrote (its loop, unchanged in substance)."""
    wanted = set(days)
    acc: dict[tuple[str, date], dict[str, Any]] = {}

    def later(a: datetime | None, b: datetime | None) -> datetime | None:
        x, y = as_utc(a), as_utc(b)
        return y if x is None else x if y is None else max(x, y)

    def slot(email: str | None, when: datetime | None) -> dict[str, Any] | None:
        if not email or when is None:
            return None
        day = as_utc(when).astimezone(UTC).date()  # type: ignore[union-attr]
        if day not in wanted:
            return None
        return acc.setdefault((email.lower(), day), {"s": 0, "h": 0, "a": set(), "secs": 0,
                                                     "last": None})

    for e in session.exec(select(ActivityEvent).where(ActivityEvent.source_id == source.id)):
        if (s := slot(e.email, e.time)) is not None:
            s["s"] += e.type == "Sign in"
            s["last"] = later(s["last"], e.time)
    for m in session.exec(select(Meeting).where(Meeting.source_id == source.id)):
        if (s := slot(m.host_email, m.start_time)) is not None:
            s["h"] += 1
            s["last"] = later(s["last"], m.end_time)
    leaves: dict[tuple[str, date], tuple[datetime | None, datetime | None]] = {}
    for p in session.exec(select(MeetingParticipant)
                          .where(MeetingParticipant.source_id == source.id)):
        if (s := slot(p.user_email, p.join_time)) is not None:
            s["a"].add(p.meeting_uuid)
            s["secs"] += p.duration or 0
            key = (p.user_email.lower(), as_utc(p.join_time).date())  # type: ignore[union-attr]
            leave, join = leaves.get(key, (None, None))
            leaves[key] = (later(leave, p.leave_time), later(join, p.join_time))
    for key, (leave, join) in leaves.items():
        acc[key]["last"] = later(acc[key]["last"], leave or join)

    target = source.governance_source_id or source.id
    zoom_ids = {u.email.lower(): u.zoom_id for u in session.exec(
        select(ZoomUser).where(ZoomUser.source_id == target, col(ZoomUser.deleted_at).is_(None)))}
    identities = {c.user_zoom_id: c.identity_id for c in session.exec(
        select(AccountCorrelation).where(AccountCorrelation.source_id == target))}
    out = {}
    for (email, day), v in acc.items():
        details: dict[str, str] = {}
        if email in zoom_ids:
            details["user_zoom_id"] = zoom_ids[email]
            if zoom_ids[email] in identities:
                details["identity_id"] = str(identities[zoom_ids[email]])
        out[(email, day)] = (v["s"], v["h"], len(v["a"]), v["secs"] // 60, as_utc(v["last"]),
                             details)
    return out


def stored(session: Session, source: Source) -> dict[tuple, tuple]:
    session.expire_all()
    return {(r.email, r.day): (r.sign_ins, r.meetings_hosted, r.meetings_attended,
                               r.meeting_minutes, as_utc(r.last_activity_at), r.details)
            for r in session.exec(select(UserDailySummary)
                                  .where(UserDailySummary.source_id == source.id))}


def seed(session: Session) -> Source:
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    t, s = tenant.id, source.id
    identity = Identity(tenant_id=t, external_id="ext-ann", email="ann@x.io",
                        email_normalized="ann@x.io")
    session.add(identity)
    session.add_all([
        ZoomUser(tenant_id=t, source_id=s, zoom_id="z-ann", email="Ann@X.io"),
        ZoomUser(tenant_id=t, source_id=s, zoom_id="z-bob", email="bob@x.io"),
        ZoomUser(tenant_id=t, source_id=s, zoom_id="z-old", email="cy@x.io",
                 deleted_at=at(D1, 0)),
    ])
    session.flush()
    session.add(AccountCorrelation(tenant_id=t, source_id=s, user_zoom_id="z-ann",
                                   identity_id=identity.id, method="email"))
    events = [
        ("ann@x.io", at(D1, 8), "Sign in"), ("ANN@x.io", at(D1, 9), "Sign in"),
        ("ann@x.io", at(D1, 18), "Sign out"),
        ("cy@x.io", at(D2, 23, 30, EST), "Sign in"),  # 04:30 UTC on D3
        ("dan@x.io", at(D2, 7), "Sign out"),  # activity without a sign-in
        ("", at(D2, 7), "Sign in"),  # no email: no summary
        ("ann@x.io", at(D4, 8), "Sign in"),  # a day not recomputed
    ]
    session.add_all([ActivityEvent(tenant_id=t, source_id=s, event_key=f"e{i}", email=email,
                                   time=when, type=kind)
                     for i, (email, when, kind) in enumerate(events)])
    meetings = [
        ("m1", "Ann@x.io", at(D1, 10), at(D1, 20)),
        ("m2", "bob@x.io", at(D2, 23, 0, EST), None),  # starts D3 UTC, no end yet
        ("m3", "", at(D2, 9), at(D2, 10)),
        ("m4", "bob@x.io", at(D4, 9), at(D4, 10)),
    ]
    session.add_all([Meeting(tenant_id=t, source_id=s, uuid=u, host_email=host,
                             start_time=start, end_time=end)
                     for u, host, start, end in meetings])
    participants = [
        ("m1", "ann@x.io", at(D1, 10), at(D1, 10, 30), 1799),
        ("m1", "ANN@x.io", at(D1, 10, 40), at(D1, 11), 1201),  # rejoined: one meeting
        ("m1", "bob@x.io", at(D1, 10), None, None),  # still in: join is the last activity
        ("m1", "", at(D1, 10), at(D1, 11), 3600),  # guest
        ("m2", "bob@x.io", at(D3, 4), at(D3, 5), 3599),
        ("m2", "eve@x.io", at(D3, 4), None, 200),
        ("m2", "eve@x.io", at(D3, 4, 10), at(D3, 4, 20), 100),
        ("m4", "ann@x.io", at(D4, 9), at(D4, 10), 3600),
    ]
    session.add_all([MeetingParticipant(tenant_id=t, source_id=s, participant_key=f"p{i}",
                                        meeting_uuid=m, user_email=email, join_time=join,
                                        leave_time=leave, duration=secs)
                     for i, (m, email, join, leave, secs) in enumerate(participants)])
    session.flush()
    return source


@pytest.fixture
def sqlite_session(tmp_path: Path) -> Iterator[Session]:
    engine = create_engine(f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    SQLModel.metadata.create_all(engine)
    with Session(engine, expire_on_commit=False) as db:
        yield db
    engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request: pytest.FixtureRequest) -> Session:
    return request.getfixturevalue("session" if request.param == "postgresql"
                                   else "sqlite_session")


def test_recompute_equals_the_python_loop_it_replaced_on_every_column(db: Session) -> None:
    source = seed(db)
    days = [D1, D2, D3]
    written = summaries.recompute(db, source, days)
    expected = reference(db, source, days)
    assert stored(db, source) == expected
    assert written == len(expected)
    ann = expected[("ann@x.io", D1)]
    assert ann[:4] == (2, 1, 1, 50)
    assert ann[4] == at(D1, 20)
    assert set(ann[5]) == {"user_zoom_id", "identity_id"}
    assert expected[("bob@x.io", D1)][4] == at(D1, 10)
    assert expected[("cy@x.io", D3)][5] == {}  # deleted account: no link
    assert ("", D2) not in expected
    assert ("dan@x.io", D2) in expected

    # Non-contiguous days: D2 alone leaves D1 and D3 as they were; re-running is a no-op.
    assert summaries.recompute(db, source, [D2, D4]) == len(reference(db, source, [D2, D4]))
    assert stored(db, source) == {**expected, **reference(db, source, [D2, D4])}
    before = stored(db, source)
    summaries.recompute(db, source, [D1, D2, D3, D4])
    assert stored(db, source) == before


def test_days_left_without_input_lose_their_summaries(db: Session) -> None:
    source = seed(db)
    summaries.recompute(db, source, [D1, D2, D3, D4])
    assert ("dan@x.io", D2) in stored(db, source)
    # Every input of D2 goes (late corrections), and ann's D1 sign-ins and attendance go.
    for model, column in ((ActivityEvent, ActivityEvent.time), (Meeting, Meeting.start_time)):
        db.execute(delete(model).where(col(column) >= at(D2, 0), col(column) < at(D3, 0)))
    db.execute(delete(ActivityEvent).where(col(ActivityEvent.email).ilike("ann@x.io"),
                                           col(ActivityEvent.time) < at(D2, 0)))
    db.execute(delete(MeetingParticipant).where(
        col(MeetingParticipant.user_email).ilike("ann@x.io"),
        col(MeetingParticipant.join_time) < at(D2, 0)))
    db.flush()
    summaries.recompute(db, source, [D1, D2, D3])
    after = stored(db, source)
    assert after == {**reference(db, source, [D1, D2, D3]),
                     **reference(db, source, [D4])}
    assert not [k for k in after if k[1] == D2]
    assert after[("ann@x.io", D1)][:4] == (0, 1, 0, 0)  # hosting m1 remains
    # A day with nothing at all left: its summaries go, the row count says none written.
    db.execute(delete(UserDailySummary).where(col(UserDailySummary.day) == D4))
    db.flush()
    db.add(UserDailySummary(tenant_id=source.tenant_id, source_id=source.id, email="zed@x.io",
                            day=D2, sign_ins=3))
    db.flush()
    assert summaries.recompute(db, source, [D2]) == 0
    assert not [k for k in stored(db, source) if k[1] == D2]


def test_days_are_read_as_utc_ranges_with_exact_midnight_bounds_and_gaps(db: Session) -> None:
    """The inputs are selected by time ranges, one per run of consecutive days: an input at
    UTC midnight belongs to the day it starts, the last instant before it to the day before,
    and a day between two runs (or an offset time that lands in it) stays out."""
    source = seed(db)
    t, s = source.tenant_id, source.id
    last_instant = timedelta(microseconds=1)
    edges = [
        ("fay@x.io", at(D1, 0), "Sign in"),  # first instant of D1
        ("fay@x.io", at(D2, 0) - last_instant, "Sign in"),  # last instant of D1
        ("fay@x.io", at(D2, 0), "Sign out"),  # D2: the gap below
        ("fay@x.io", at(D3, 0) - last_instant, "Sign in"),  # still D2
        ("fay@x.io", at(D2, 19, 0, EST), "Sign in"),  # 00:00 UTC on D3
        ("fay@x.io", at(D4, 0) - last_instant, "Sign out"),  # last instant of D3
        ("fay@x.io", at(D4, 0), "Sign in"),  # D4, after the last run
    ]
    db.add_all([ActivityEvent(tenant_id=t, source_id=s, event_key=f"edge{i}", email=email,
                              time=when, type=kind)
                for i, (email, when, kind) in enumerate(edges)])
    db.add(Meeting(tenant_id=t, source_id=s, uuid="m-edge", host_email="fay@x.io",
                   start_time=at(D2, 0), end_time=at(D2, 1)))
    db.add(MeetingParticipant(tenant_id=t, source_id=s, participant_key="p-edge",
                              meeting_uuid="m-edge", user_email="fay@x.io",
                              join_time=at(D3, 0) - last_instant, leave_time=at(D3, 1),
                              duration=60))
    db.flush()
    written = summaries.recompute(db, source, [D3, D1])
    expected = reference(db, source, [D1, D3])
    assert stored(db, source) == expected
    assert written == len(expected)
    assert expected[("fay@x.io", D1)][:4] == (2, 0, 0, 0)
    assert expected[("fay@x.io", D3)][:4] == (1, 0, 0, 0)
    assert not [k for k in expected if k[1] in (D2, D4)]
    # The gap day on its own: the midnight sign-out, the hosted meeting, the attendance.
    summaries.recompute(db, source, [D2])
    fay = stored(db, source)[("fay@x.io", D2)]
    assert fay == reference(db, source, [D2])[("fay@x.io", D2)]
    assert fay[:4] == (1, 1, 1, 1)


def test_statements_built_once_serve_every_source_with_its_own_values(db: Session) -> None:
    """`recompute` builds its statements once per shape, every value bound: a source of
    another tenant recomputed through the same statements gets its own tenant, inputs and
    accounts, and leaves the first source's summaries as they were; so does one user's
    recompute (a webhook's), whose shape differs."""
    first, second = seed(db), seed(db)
    db.add(ActivityEvent(tenant_id=second.tenant_id, source_id=second.id, event_key="more",
                         email="ann@x.io", time=at(D1, 12), type="Sign in"))
    db.flush()
    summaries._statements.cache_clear()
    summaries.recompute(db, first, [D1, D2, D3])
    summaries.recompute(db, second, [D1, D2, D3])
    assert summaries._statements.cache_info().hits == 1  # the second call's shape was built
    assert stored(db, first) == reference(db, first, [D1, D2, D3])
    assert stored(db, second) == reference(db, second, [D1, D2, D3])
    assert stored(db, second)[("ann@x.io", D1)][0] == 3  # its own extra sign-in counted
    assert stored(db, first)[("ann@x.io", D1)][0] == 2
    owners = set(db.exec(select(UserDailySummary.source_id, UserDailySummary.tenant_id)))
    assert owners == {(first.id, first.tenant_id), (second.id, second.tenant_id)}
    before = stored(db, first)
    db.add(ActivityEvent(tenant_id=second.tenant_id, source_id=second.id, event_key="again",
                         email="ann@x.io", time=at(D1, 13), type="Sign in"))
    db.flush()
    assert summaries.recompute(db, second, [D1], emails=["ANN@x.io"]) == 1
    assert stored(db, second)[("ann@x.io", D1)][0] == 4
    assert stored(db, second) == reference(db, second, [D1, D2, D3])
    assert stored(db, first) == before


def test_one_users_recompute_counts_their_events_stored_in_any_case(db: Session) -> None:
    """One user's recompute (a webhook's) matches e-mails as the summaries group them,
    lower-cased: rows stored in another case ("ANN@x.io" in the seed; our own writers store
    them lower-cased) count for the day it rewrites, as in the whole recompute."""
    source = seed(db)
    summaries.recompute(db, source, [D1, D2, D3])
    whole = stored(db, source)
    assert summaries.recompute(db, source, [D1], emails=["Ann@X.io"]) == 1
    assert stored(db, source) == whole
    assert whole[("ann@x.io", D1)][:4] == (2, 1, 1, 50)
