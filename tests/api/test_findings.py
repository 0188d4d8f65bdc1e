"""Access-review findings against a tenant whose truth is written down here, boundaries included:
activity exactly N days ago, a second before that, an identity terminated today, an account
active only as a meeting attendee, a split set-up's activity-only source, another tenant."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from worker.db import session_scope
from worker.models import (
    AccountCorrelation,
    ActivityEvent,
    Identity,
    Meeting,
    MeetingParticipant,
    Source,
    Tenant,
    UserDailySummary,
    ZoomGroup,
    ZoomRole,
    ZoomUser,
)
from worker.reports.findings import (
    ReviewParams,
    Tally,
    build_review,
    daily_active_accounts,
    iter_accounts,
    shown_rows,
    summarise,
)
from worker.reports.schemas import FINDINGS

NOW = datetime(2026, 6, 15, 12, 0, 0, tzinfo=UTC)
DAYS = 30
CUTOFF = NOW - timedelta(days=DAYS)
SECOND = timedelta(seconds=1)

# zoom_id -> the findings it must have (and no others). Every account is linked to an active
# identity unless its name says otherwise, so each row shows the one thing it is here for.
TRUTH: dict[str, set[str]] = {
    "linked-active": set(),
    "orphan": {"orphan"},
    "leaver-today": {"leaver"},  # terminated_at today 00:00, before NOW
    "leaver-tomorrow": set(),  # terminated_at tomorrow: not yet a leaver
    "leaver-status": {"leaver"},  # identity "inactive", no date
    "leaver-zoom-inactive": set(),  # identity terminated, but the Zoom account is inactive
    "licence-exactly-n-days": set(),  # last sign-in exactly at the cut-off: not idle
    "licence-a-second-early": {"unused_licence"},  # a second before the cut-off: idle
    "licence-attendee": set(),  # only attended a meeting (left after the cut-off)
    "licence-host": set(),  # only hosted a meeting (ended after the cut-off)
    "licence-summary-only": {"unused_licence"},  # summary day = cut-off day, instant before it
    "licence-split-source": set(),  # signed in via the activity-only source
    "licence-zoom-login": set(),  # Zoom's last_login_time after the cut-off
    "admin-idle": {"idle_privileged"},
    "owner-active": set(),
    "custom-admin-idle": {"idle_privileged"},  # custom role "Helpdesk Admin", never active
    # Privileges decide, not names: "Reporting Admin" only reads, "Coordinators" edits roles.
    "named-admin-idle": set(),
    "role-editor-idle": {"idle_privileged"},
    "member-idle": set(),  # idle, but neither licensed nor privileged
    "never-used": {"never_used"},  # created 31 days ago, no activity ever
    "never-used-exactly-n-days": set(),  # created exactly 30 days ago
    "pending-old": {"pending_invitation"},
    "pending-new": set(),
    "orphan-idle-licence": {"orphan", "unused_licence", "never_used"},
}


@dataclass
class Fixture:
    tenant_id: uuid.UUID
    source_id: uuid.UUID
    other_tenant_id: uuid.UUID
    sign_ins_in_window: int
    live_accounts: int


def _seed(url: str | None = None) -> Fixture:
    with session_scope(url) as db:
        tenant, other = Tenant(name="acme"), Tenant(name="globex")
        db.add_all([tenant, other])
        db.flush()
        t = tenant.id
        src = Source(tenant_id=t, name="zoom")
        db.add(src)
        db.flush()
        activity_only = Source(tenant_id=t, name="zoom-activity", aggregation_enabled=False,
                               governance_source_id=src.id)
        other_src = Source(tenant_id=other.id, name="zoom")
        db.add_all([activity_only, other_src])
        db.flush()
        s = src.id
        db.add_all([
            ZoomRole(tenant_id=t, source_id=s, zoom_id="0", name="Owner"),
            ZoomRole(tenant_id=t, source_id=s, zoom_id="1", name="Admin"),
            ZoomRole(tenant_id=t, source_id=s, zoom_id="2", name="Member"),
            ZoomRole(tenant_id=t, source_id=s, zoom_id="r-help", name="Helpdesk Admin",
                     privileges=["User:Read", "User:Edit"], admin_privileges=True),
            ZoomRole(tenant_id=t, source_id=s, zoom_id="r-named", name="Reporting Admin",
                     privileges=["User:Read", "Dashboard:Read"], admin_privileges=False),
            ZoomRole(tenant_id=t, source_id=s, zoom_id="r-roles", name="Coordinators",
                     privileges=["Role:Read", "Role:Edit"], admin_privileges=True),
            ZoomGroup(tenant_id=t, source_id=s, zoom_id="g-eng", name="Engineering"),
        ])
        events: list[tuple[str, datetime, str, uuid.UUID]] = []
        old = NOW - timedelta(days=400)

        def account(zoom_id: str, *, type_: int = 1, status: str = "active", role: str = "2",
                    created: datetime = old, identity: str | None = "active",
                    terminated_at: datetime | None = None, **kw: object) -> None:
            db.add(ZoomUser(tenant_id=t, source_id=s, zoom_id=zoom_id,
                            email=f"{zoom_id.capitalize()}@Acme.example", type=type_,
                            status=status, role_id=role, zoom_created_at=created,
                            group_ids=["g-eng"], **kw))  # type: ignore[arg-type]
            if identity is None:
                return
            person = Identity(tenant_id=t, external_id=f"hr-{zoom_id}",
                              email=f"{zoom_id}@acme.example", status=identity,
                              terminated_at=terminated_at)
            db.add(person)
            db.flush()
            db.add(AccountCorrelation(tenant_id=t, source_id=s, user_zoom_id=zoom_id,
                                      identity_id=person.id, method="email"))

        def sign_in(zoom_id: str, at: datetime, source: uuid.UUID = s) -> None:
            events.append((zoom_id, at, "Sign in", source))

        account("linked-active", type_=2)
        for at in (NOW - timedelta(days=1), NOW - timedelta(days=1, hours=1),
                   NOW - timedelta(days=5), NOW - timedelta(days=100)):
            sign_in("linked-active", at)
        events.append(("linked-active", NOW - timedelta(days=1) + SECOND, "Sign out", s))
        account("orphan", identity=None)
        sign_in("orphan", NOW - timedelta(days=2))
        midnight = datetime.combine(NOW.date(), datetime.min.time(), tzinfo=UTC)
        account("leaver-today", terminated_at=midnight)
        sign_in("leaver-today", NOW - timedelta(hours=3))
        account("leaver-tomorrow", terminated_at=NOW + timedelta(days=1))
        sign_in("leaver-tomorrow", NOW - timedelta(hours=3))
        account("leaver-status", identity="inactive")
        sign_in("leaver-status", NOW - timedelta(days=3))
        account("leaver-zoom-inactive", identity="terminated", status="inactive",
                terminated_at=NOW - timedelta(days=60))
        sign_in("leaver-zoom-inactive", NOW - timedelta(days=3))
        account("licence-exactly-n-days", type_=2)
        sign_in("licence-exactly-n-days", CUTOFF)
        account("licence-a-second-early", type_=2)
        sign_in("licence-a-second-early", CUTOFF - SECOND)
        account("licence-attendee", type_=2)
        db.add(MeetingParticipant(tenant_id=t, source_id=s, participant_key="p-att",
                                  meeting_uuid="m-1", user_email="licence-attendee@acme.example",
                                  join_time=CUTOFF - timedelta(minutes=30),
                                  leave_time=CUTOFF + timedelta(minutes=10), duration=2400))
        account("licence-host", type_=2)
        db.add(Meeting(tenant_id=t, source_id=s, uuid="m-2", host_email="licence-host@acme.example",
                       start_time=CUTOFF - timedelta(hours=1), end_time=CUTOFF + SECOND))
        account("licence-summary-only", type_=2)
        db.add(UserDailySummary(tenant_id=t, source_id=s, email="licence-summary-only@acme.example",
                                day=CUTOFF.date(), sign_ins=2, last_activity_at=CUTOFF - SECOND))
        account("licence-split-source", type_=2)
        sign_in("licence-split-source", NOW - timedelta(days=4), activity_only.id)
        account("licence-zoom-login", type_=2, last_login_time=CUTOFF + SECOND)
        account("admin-idle", role="1")
        sign_in("admin-idle", NOW - timedelta(days=40))
        account("owner-active", role="0")
        sign_in("owner-active", NOW - timedelta(days=1))
        account("custom-admin-idle", role="r-help", created=NOW - timedelta(days=10))
        account("named-admin-idle", role="r-named")
        sign_in("named-admin-idle", NOW - timedelta(days=50))
        account("role-editor-idle", role="r-roles")
        sign_in("role-editor-idle", NOW - timedelta(days=50))
        account("member-idle")
        sign_in("member-idle", NOW - timedelta(days=50))
        account("never-used", created=NOW - timedelta(days=31))
        account("never-used-exactly-n-days", created=CUTOFF)
        account("pending-old", status="pending", created=NOW - timedelta(days=45))
        account("pending-new", status="pending", created=NOW - timedelta(days=5))
        account("orphan-idle-licence", type_=2, identity=None)
        # Deleted from Zoom: not in the review at all, whatever it did.
        db.add(ZoomUser(tenant_id=t, source_id=s, zoom_id="deleted", email="deleted@acme.example",
                        type=2, status="active", deleted_at=NOW - timedelta(days=2)))
        # Another tenant's orphan with the same e-mail as one of ours.
        db.add(ZoomUser(tenant_id=other.id, source_id=other_src.id, zoom_id="orphan",
                        email="orphan@acme.example", status="active", type=2,
                        zoom_created_at=old))
        for n, (zoom_id, at, kind, source) in enumerate(events):
            db.add(ActivityEvent(tenant_id=t, source_id=source, event_key=f"ev{n}",
                                 email=f"{zoom_id}@acme.example", time=at, type=kind))
        window = NOW - timedelta(days=90)
        in_window = sum(1 for _, at, kind, _ in events if kind == "Sign in" and at >= window)
        return Fixture(tenant_id=t, source_id=s, other_tenant_id=other.id,
                       sign_ins_in_window=in_window, live_accounts=len(TRUTH))


@pytest.fixture(scope="module")
def seeded(engine: Engine) -> Iterator[Fixture]:
    from tests.conftest import truncate_all

    truncate_all(engine)
    yield _seed()
    truncate_all(engine)


def _params(seeded: Fixture, **kw: object) -> ReviewParams:
    return ReviewParams(tenant_id=seeded.tenant_id, now=NOW, days=DAYS, **kw)  # type: ignore[arg-type]


def test_every_account_has_exactly_its_findings(seeded: Fixture) -> None:
    with session_scope() as db:
        review = build_review(db, _params(seeded))
        got = {row.zoom_id: set(row.findings) for row in iter_accounts(db, review)}
    assert got == TRUTH


@pytest.mark.parametrize("finding", FINDINGS)
def test_each_finding_is_a_query_of_its_own(seeded: Fixture, finding: str) -> None:
    expected = sorted(z for z, found in TRUTH.items() if finding in found)
    assert expected, f"the fixture has no {finding}"
    with session_scope() as db:
        review = build_review(db, _params(seeded))
        got = [row.zoom_id for row in iter_accounts(db, review, finding=finding)]
    assert sorted(got) == expected


def test_each_row_carries_the_evidence(seeded: Fixture) -> None:
    with session_scope() as db:
        review = build_review(db, _params(seeded))
        rows = {row.zoom_id: row for row in iter_accounts(db, review)}
    active = rows["linked-active"]
    assert active.email == "Linked-active@Acme.example"
    assert (active.status, active.type, active.role_id, active.role) == ("active", 2, "2", "Member")
    assert active.groups == ["Engineering"]
    assert active.identity_external_id == "hr-linked-active"
    assert active.identity_status == "active"
    assert active.last_sign_in_at == NOW - timedelta(days=1)
    assert active.last_activity_at == NOW - timedelta(days=1) + SECOND  # the sign-out
    # Three sign-ins in 90 days (the fourth is 100 days old) on two UTC days.
    assert (active.sign_ins, active.days_active) == (3, 2)
    average = seeded.sign_ins_in_window / seeded.live_accounts
    assert active.sign_ins_vs_average == pytest.approx(3 / average, abs=1e-2)  # avg rounded
    attendee = rows["licence-attendee"]
    assert attendee.last_activity_at == CUTOFF + timedelta(minutes=10)
    assert attendee.last_sign_in_at is None
    assert (attendee.sign_ins, attendee.days_active) == (0, 1)
    summary_only = rows["licence-summary-only"]
    assert (summary_only.sign_ins, summary_only.days_active) == (2, 1)
    assert summary_only.last_activity_at == CUTOFF - SECOND
    assert rows["admin-idle"].privileged
    assert rows["custom-admin-idle"].privileged
    assert rows["owner-active"].privileged
    assert not rows["member-idle"].privileged
    assert not rows["named-admin-idle"].privileged
    assert rows["role-editor-idle"].privileged
    leaver = rows["leaver-today"]
    assert leaver.identity_terminated_at == datetime.combine(NOW.date(), datetime.min.time(),
                                                             tzinfo=UTC)
    assert rows["licence-zoom-login"].last_sign_in_at == CUTOFF + SECOND
    assert rows["licence-split-source"].last_sign_in_at == NOW - timedelta(days=4)
    assert rows["never-used"].last_activity_at is None
    assert rows["orphan-idle-licence"].identity_id is None


def test_the_summary_counts_findings_and_the_share_of_unused_licences(seeded: Fixture) -> None:
    with session_scope() as db:
        summary = summarise(db, build_review(db, _params(seeded)))
    assert summary.accounts == len(TRUTH)
    assert summary.findings == {f: sum(f in v for v in TRUTH.values()) for f in FINDINGS}
    licensed = 9  # linked-active, the seven licence-* accounts, orphan-idle-licence
    assert summary.licences == licensed
    assert summary.unused_licences == 3
    assert summary.unused_licence_share == pytest.approx(3 / licensed, abs=1e-4)
    assert sum(b.accounts for b in summary.days_active_distribution) == len(TRUTH)
    assert summary.tenant_average_sign_ins == pytest.approx(
        seeded.sign_ins_in_window / seeded.live_accounts, abs=1e-3)


def test_daily_active_accounts_count_each_account_once_a_day(seeded: Fixture) -> None:
    with session_scope() as db:
        daily = {d.day: d.accounts for d in daily_active_accounts(db, _params(seeded))}
    assert len(daily) == 91  # the UTC day 90 days ago through today, zeros included
    one_day_ago = (NOW - timedelta(days=1)).date()
    # linked-active (sign-ins and a sign-out) and owner-active.
    assert daily[one_day_ago] == 2
    # licence-exactly-n-days, the attendee, the host and the summary-only account; the
    # account a second early signed in on the same day, before noon.
    assert daily[CUTOFF.date()] == 5
    assert daily[date(2026, 3, 20)] == 0


def test_a_source_filter_and_another_tenant_see_only_their_accounts(seeded: Fixture) -> None:
    with session_scope() as db:
        theirs = build_review(db, ReviewParams(tenant_id=seeded.other_tenant_id, now=NOW))
        assert [(r.zoom_id, r.findings) for r in iter_accounts(db, theirs)] == [
            ("orphan", ["orphan", "unused_licence", "never_used"])
        ]
        ours = build_review(db, _params(seeded, source_id=seeded.source_id))
        assert len(list(iter_accounts(db, ours))) == len(TRUTH)
        nobody = build_review(db, _params(seeded, source_id=uuid.uuid4()))
        assert list(iter_accounts(db, nobody)) == []


def test_keyset_pages_cover_every_account_once(seeded: Fixture) -> None:
    with session_scope() as db:
        review = build_review(db, _params(seeded))
        seen: list[int] = []
        after = None
        while True:
            page = list(iter_accounts(db, review, after_id=after, limit=4))
            if not page:
                break
            seen += [r.account_id for r in page]
            after = page[-1].account_id
    assert len(seen) == len(TRUTH) == len(set(seen))
    assert seen == sorted(seen)


@contextmanager
def _on_sqlite(tmp_path: Path) -> Iterator[tuple[Session, Fixture]]:
    """The fixture in a migrated SQLite file (the demo's database), and a session on it."""
    from worker import migrate
    from worker.db import get_engine

    url = f"sqlite:///{tmp_path / 'review.sqlite3'}"
    migrate.upgrade(url)
    seeded = _seed(url)
    try:
        with Session(get_engine(url)) as db:
            yield db, seeded
    finally:
        get_engine(url).dispose()


def test_the_findings_are_the_same_on_sqlite_the_demo_database(tmp_path: Path) -> None:
    with _on_sqlite(tmp_path) as (db, seeded):
        review = build_review(db, _params(seeded))
        rows = {row.zoom_id: row for row in iter_accounts(db, review)}
        daily = {d.day: d.accounts for d in daily_active_accounts(db, _params(seeded))}
        filtered = {r.zoom_id for r in iter_accounts(db, review, finding="unused_licence")}
    assert {z: set(r.findings) for z, r in rows.items()} == TRUTH
    assert filtered == {z for z, f in TRUTH.items() if "unused_licence" in f}
    assert rows["licence-attendee"].last_activity_at == CUTOFF + timedelta(minutes=10)
    assert (rows["linked-active"].sign_ins, rows["linked-active"].days_active) == (3, 2)
    assert daily[CUTOFF.date()] == 5


def test_the_idle_list_and_the_review_agree_on_who_is_idle(seeded: Fixture) -> None:
    """Two query shapes over one definition (api.insights.activity_instants): the idle-accounts
    endpoint's EXISTS probes and the review's grouped latest activity."""
    from sqlmodel import col, select

    from worker.insights import inactive_condition

    with session_scope() as db:
        for cutoff in (CUTOFF, CUTOFF - SECOND, NOW - timedelta(days=3), NOW - timedelta(days=45)):
            probed = set(db.exec(select(ZoomUser.zoom_id).where(
                col(ZoomUser.tenant_id) == seeded.tenant_id, col(ZoomUser.deleted_at).is_(None),
                inactive_condition(seeded.tenant_id, cutoff))))
            review = build_review(db, _params(seeded))
            grouped = {r.zoom_id for r in iter_accounts(db, review)
                       if r.last_activity_at is None or r.last_activity_at < cutoff}
            assert probed == grouped, cutoff


def test_a_page_aggregated_on_its_own_accounts_equals_the_full_review(seeded: Fixture) -> None:
    with session_scope() as db:
        full = {r.account_id: r.model_dump() for r in
                iter_accounts(db, build_review(db, _params(seeded)))}
        paged: dict[int, dict] = {}  # type: ignore[type-arg]
        after = None
        while True:
            review = build_review(db, _params(seeded), page=(after, 5))
            rows = list(iter_accounts(db, review, after_id=after, limit=5))
            if not rows:
                break
            paged.update({r.account_id: r.model_dump() for r in rows})
            after = rows[-1].account_id
    assert paged == full


def _filtered_pages(db: Session, seeded: Fixture, finding: str, limit: int) -> list[str]:
    """Every account with ``finding``, a filtered page of ``limit`` at a time as the API asks
    for them (the page's accounts chosen in SQL, then aggregated on their own)."""
    got: list[str] = []
    after = None
    while True:
        review = build_review(db, _params(seeded), page=(after, limit + 1), finding=finding)
        rows = list(iter_accounts(db, review, finding=finding, after_id=after, limit=limit + 1))
        got += [r.zoom_id for r in rows[:limit]]
        assert all(finding in r.findings for r in rows)
        if len(rows) <= limit:
            return got
        after = rows[limit - 1].account_id


@pytest.mark.parametrize("finding", FINDINGS)
def test_a_filtered_page_chooses_its_accounts_in_sql_and_finds_the_same(
    seeded: Fixture, finding: str
) -> None:
    expected = sorted(z for z, found in TRUTH.items() if finding in found)
    with session_scope() as db:
        ordered = [r.zoom_id for r in iter_accounts(db, build_review(db, _params(seeded)),
                                                     finding=finding)]
        for limit in (1, 2, 100):
            assert _filtered_pages(db, seeded, finding, limit) == ordered, limit
    assert sorted(ordered) == expected


def test_filtered_pages_are_the_same_on_sqlite(tmp_path: Path) -> None:
    with _on_sqlite(tmp_path) as (db, seeded):
        got = {f: sorted(_filtered_pages(db, seeded, f, 1)) for f in FINDINGS}
    assert got == {f: sorted(z for z, v in TRUTH.items() if f in v) for f in FINDINGS}


def _page_view(db: Session, seeded: Fixture, per_finding: int
               ) -> tuple[object, dict[str, list[str]]]:
    tally, rows = shown_rows(db, build_review(db, _params(seeded)), per_finding)
    tables = {name: [r.zoom_id for r in rows
                     if 0 < getattr(r, f"rank_{name}") <= per_finding] for name in FINDINGS}
    return tally, tables


def _streamed_view(db: Session, seeded: Fixture, per_finding: int
                   ) -> tuple[object, dict[str, list[str]]]:
    """The same, by streaming every row through Python (what the page did before)."""
    review = build_review(db, _params(seeded))
    tally = Tally()
    tables: dict[str, list[str]] = {name: [] for name in FINDINGS}
    for row in iter_accounts(db, review):
        tally.add(row)
        for name in row.findings:
            if len(tables[name]) < per_finding:
                tables[name].append(row.zoom_id)
    return tally, tables


@pytest.mark.parametrize("per_finding", [1, 2, 200])
def test_the_page_gets_the_totals_and_only_the_rows_its_tables_show(
    seeded: Fixture, per_finding: int
) -> None:
    with session_scope() as db:
        tally, tables = _page_view(db, seeded, per_finding)
        assert (tally, tables) == _streamed_view(db, seeded, per_finding)
        _, rows = shown_rows(db, build_review(db, _params(seeded)), per_finding)
    assert tally.accounts == len(TRUTH)  # type: ignore[attr-defined]
    shown = {z for names in tables.values() for z in names}
    assert len(rows) == len(shown | {rows[-1].zoom_id})  # nothing else leaves the database


def test_the_page_of_a_tenant_without_accounts_has_zero_totals(seeded: Fixture) -> None:
    with session_scope() as db:
        tally, rows = shown_rows(db, build_review(db, _params(seeded, source_id=uuid.uuid4())), 5)
    assert (tally, rows) == (Tally(), [])


def test_the_page_rows_are_the_same_on_sqlite(tmp_path: Path) -> None:
    with _on_sqlite(tmp_path) as (db, seeded):
        assert _page_view(db, seeded, 2) == _streamed_view(db, seeded, 2)
