"""Access-review findings: one query over a tenant's Zoom accounts, one row per account.

The database does the aggregation (latest activity, days active, sign-ins, per account) in
grouped subqueries joined to ``zoom_user``, and the rows stream out of a server-side cursor in
account id order, so the worker's memory does not grow with the tenant (the CSV export of
100,000 accounts). Each finding is one SQL condition over that row (``Review.conditions``): the
same expression filters the JSON pages (``?finding=``) and marks each row's ``findings``.

Definitions (``now`` and ``days`` given; ``cutoff = now - days``; idle = no activity at or after
``cutoff``, activity being ``api.insights.activity_instants`` or Zoom's last_login_time):
- orphan: linked to no identity;
- leaver: linked to an identity that is inactive or terminated, or whose terminated_at has
  passed, while the Zoom account's status is active;
- unused_licence: type 2 (Licensed) and idle;
- idle_privileged: a privileged role (Zoom's built-in Owner "0" or Admin "1", or a role whose
  privileges from GET /roles/{roleId} are admin ones: ``ZoomRole.admin_privileges``, the rule in
  ``worker.aggregation.privileges``; never the role's name) and idle;
- never_used: created before the cut-off, not pending, and no activity ever;
- pending_invitation: status pending and created before the cut-off.
"""

from __future__ import annotations

import json
import operator
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    Integer,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    type_coerce,
    union,
    union_all,
)
from sqlmodel import Session, col

from worker.insights import inactive_condition
from worker.kit import sql
from worker.models import (
    AccountCorrelation,
    ActivityEvent,
    Identity,
    Meeting,
    MeetingParticipant,
    Source,
    UserDailySummary,
    ZoomGroup,
    ZoomRole,
    ZoomUser,
)
from worker.models.base import UTCDateTime, as_utc
from worker.reports.activity import (
    WINDOW_DAYS,
    account_source,
    activity_instants,
    is_sign_in,
    tenant_average_sign_ins,
)
from worker.reports.schemas import (
    FINDINGS,
    AccountReview,
    Bucket,
    DayCount,
    Finding,
    ReviewSummary,
)

DEFAULT_DAYS = 30
PRIVILEGED_ROLE_IDS = ("0", "1")  # Zoom's built-in Owner and Admin roles
LEAVER_STATUSES = ("inactive", "terminated")
# Upper bounds of the days-active histogram (inclusive); the last bucket is open-ended.
DAYS_ACTIVE_BUCKETS = (0, 5, 15, 30, 60)
STREAM_BATCH = 1000


@dataclass(frozen=True)
class ReviewParams:
    tenant_id: uuid.UUID
    now: datetime
    days: int = DEFAULT_DAYS
    window_days: int = WINDOW_DAYS
    source_id: uuid.UUID | None = None

    @property
    def cutoff(self) -> datetime:
        return self.now - timedelta(days=self.days)

    @property
    def since(self) -> datetime:
        return self.now - timedelta(days=self.window_days)

    @property
    def since_day(self) -> date:
        return self.since.astimezone(UTC).date()


def _later(a: Any, b: Any) -> Any:
    """The later of two nullable timestamps (GREATEST is Postgres-only and SQLite's max(a, b)
    is NULL when either is)."""
    return type_coerce(
        case((a.is_(None), b), (b.is_(None), a), (a > b, a), else_=b), UTCDateTime()
    )


def _larger(a: Any, b: Any) -> Any:
    return case((a > b, a), else_=b)


def _instant(value: datetime) -> Any:
    return literal(value, UTCDateTime())


@dataclass
class Review:
    """The access-review query of one tenant: ``select`` yields one row per account, with the
    finding conditions as the bits of its ``finding_flags`` column (bit i: ``FINDINGS[i]``)."""

    params: ReviewParams
    select: Any
    conditions: dict[str, ColumnElement[bool]]
    groups: dict[tuple[uuid.UUID, str], str] = field(default_factory=dict)
    average: float | None = None


def _scoped(query: Any, email: Any, emails: Any) -> Any:
    return query if emails is None else query.where(email.in_(emails))


def active_days(params: ReviewParams, dialect: str, emails: Any = None) -> Any:
    """Distinct (account source, email, UTC day) with any activity in the window."""
    start = datetime.combine(params.since_day, datetime.min.time(), tzinfo=UTC)
    t = params.tenant_id

    def part(model: Any, email: Any, at: Any) -> Any:
        return _scoped(
            select(account_source(model).label("sid"), email.label("email"),
                   sql.utc_day(at, dialect).label("day"))
            .join(Source, col(Source.id) == model.source_id)
            .where(col(model.tenant_id) == t, at >= _instant(start)), email, emails)

    summaries = _scoped(
        select(account_source(UserDailySummary).label("sid"),
               col(UserDailySummary.email).label("email"), col(UserDailySummary.day))
        .join(Source, col(Source.id) == UserDailySummary.source_id)
        .where(col(UserDailySummary.tenant_id) == t,
               col(UserDailySummary.day) >= params.since_day,
               or_(UserDailySummary.sign_ins + col(UserDailySummary.meetings_hosted)
                   + UserDailySummary.meetings_attended + UserDailySummary.meeting_minutes > 0,
                   col(UserDailySummary.last_activity_at).is_not(None))),
        col(UserDailySummary.email), emails)
    return union(
        part(ActivityEvent, col(ActivityEvent.email), col(ActivityEvent.time)),
        part(Meeting, col(Meeting.host_email), col(Meeting.start_time)),
        part(MeetingParticipant, col(MeetingParticipant.user_email),
             col(MeetingParticipant.join_time)),
        summaries,
    ).subquery("active_days")


def _account_activity(params: ReviewParams, dialect: str, emails: Any = None) -> Any:
    """Per (account source, email), in one pass over the four activity tables (each table read
    once, not once per figure: bench/RESULTS.md, issue 17 report page): the latest activity
    instant (``activity_instants``), the latest sign-in, the distinct UTC days with activity in
    the window (as ``active_days`` counts them), and the window's sign-ins from the events and
    from the summaries (the larger wins, as in ``worker.insights.figures``)."""
    start = _instant(datetime.combine(params.since_day, datetime.min.time(), tzinfo=UTC))
    since = _instant(params.since)
    t = params.tenant_id
    no_time = cast(null(), UTCDateTime())

    def day_from(at: Any) -> Any:
        return case((at >= start, sql.utc_day(at, dialect)), else_=cast(null(), Date))

    def rows(model: Any, email: Any, at: Any, sign_in_at: Any, day: Any, event_sign_ins: Any,
             summary_sign_ins: Any) -> Any:
        return _scoped(
            select(account_source(model).label("sid"), email.label("email"),
                   type_coerce(at, UTCDateTime()).label("at"),
                   type_coerce(sign_in_at, UTCDateTime()).label("sign_in_at"),
                   day.label("day"), event_sign_ins.label("event_sign_ins"),
                   summary_sign_ins.label("summary_sign_ins"))
            .join(Source, col(Source.id) == model.source_id)
            .where(col(model.tenant_id) == t), email, emails)

    ev, m, p, d = ActivityEvent, Meeting, MeetingParticipant, UserDailySummary
    summary_in_window = col(d.day) >= params.since_day
    summary_active = or_(d.sign_ins + col(d.meetings_hosted) + d.meetings_attended
                         + d.meeting_minutes > 0, col(d.last_activity_at).is_not(None))
    zero = literal(0)
    # Per table, beside its activity instant (activity_instants, the one definition): the UTC
    # day it makes active (active_days: a meeting's start, an attendance's join), and its
    # sign-ins in the window (events: from the instant `since`; summaries: from its day).
    extra: dict[Any, tuple[Any, Any, Any]] = {
        ev: (day_from(col(ev.time)),
             case((and_(is_sign_in(ev.type), col(ev.time) >= since), 1), else_=0), zero),
        m: (day_from(col(m.start_time)), zero, zero),
        p: (day_from(col(p.join_time)), zero, zero),
        d: (case((and_(summary_in_window, summary_active), col(d.day)),
                 else_=cast(null(), Date)),
            zero, case((summary_in_window, d.sign_ins), else_=0)),
    }
    parts = union_all(*(
        rows(i.model, i.email, i.at,
             case((i.sign_in, i.at), else_=no_time) if i.sign_in is not None else no_time,
             *extra[i.model])
        for i in activity_instants()
    )).subquery("instants")
    return (
        select(parts.c.sid, parts.c.email, func.max(parts.c.at).label("last_at"),
               func.max(parts.c.sign_in_at).label("last_sign_in_at"),
               func.count(parts.c.day.distinct()).label("days"),
               func.sum(parts.c.event_sign_ins).label("event_sign_ins"),
               func.sum(parts.c.summary_sign_ins).label("summary_sign_ins"))
        .group_by(parts.c.sid, parts.c.email)
    ).subquery("activity")


# "Ever" for never_used: before any Zoom activity can be (Zoom was founded in 2011).
EVER = datetime(1970, 1, 1, tzinfo=UTC)


def account_condition(finding: str, params: ReviewParams) -> ColumnElement[bool]:
    """``finding`` as a condition on a ``zoom_user`` row alone: EXISTS probes of the account's
    correlation, identity, role and activity (``worker.insights.inactive_condition``, indexed
    per account) instead of the tenant-wide aggregates of ``Review.conditions``. Both spell the
    definitions of the module docstring (the findings tests check that they agree); this one
    lets a filtered page stop at its accounts (``build_review(page=, finding=)``)."""
    u: Any = ZoomUser
    t = params.tenant_id
    created = func.coalesce(u.zoom_created_at, u.first_seen_at)
    cutoff = _instant(params.cutoff)
    # The account's identity, as the review's outer joins find it.
    identity = (select(col(Identity.id))
                .join(AccountCorrelation, col(AccountCorrelation.identity_id) == Identity.id)
                .where(col(AccountCorrelation.source_id) == u.source_id,
                       col(AccountCorrelation.user_zoom_id) == u.zoom_id))
    if finding == "orphan":
        return ~identity.exists()
    if finding == "leaver":
        leaving = identity.where(
            or_(col(Identity.status).in_(LEAVER_STATUSES),
                and_(col(Identity.terminated_at).is_not(None),
                     col(Identity.terminated_at) <= _instant(params.now))))
        return and_(u.status == "active", leaving.exists())
    idle = inactive_condition(t, params.cutoff)
    if finding == "unused_licence":
        return and_(u.type == 2, idle)
    if finding == "idle_privileged":
        admin_role = select(col(ZoomRole.id)).where(
            col(ZoomRole.source_id) == u.source_id, col(ZoomRole.zoom_id) == u.role_id,
            col(ZoomRole.admin_privileges).is_(True))
        return and_(or_(col(u.role_id).in_(PRIVILEGED_ROLE_IDS), admin_role.exists()), idle)
    if finding == "never_used":
        return and_(u.status != "pending", created < cutoff, inactive_condition(t, EVER))
    if finding == "pending_invitation":
        return and_(u.status == "pending", created < cutoff)
    raise ValueError(f"unknown finding {finding!r}")


def build_review(
    session: Session,
    params: ReviewParams,
    page: tuple[int | None, int] | None = None,
    finding: str | None = None,
) -> Review:
    """The review's query. With ``page`` (after this account id, this many accounts) the
    aggregates cover only that page's accounts, so a JSON page costs what its accounts do, not
    what the tenant does; ``iter_rows`` must then be asked for the same page (and finding).
    With ``finding`` too, the page's accounts are the next ones *with that finding*
    (``account_condition``, walked in id order), so a filtered page costs a page as well."""
    dialect = sql.dialect(session)
    u: Any = ZoomUser  # columns, for SQL expressions (mypy reads them as their Python values)
    email = func.lower(u.email)
    emails = page_ids = None
    if page is not None:
        after, limit = page
        accounts = select(col(ZoomUser.id).label("id"), email.label("email")).where(
            col(ZoomUser.tenant_id) == params.tenant_id, col(ZoomUser.deleted_at).is_(None),
            col(ZoomUser.id) > (after or 0))
        if params.source_id is not None:
            accounts = accounts.where(col(ZoomUser.source_id) == params.source_id)
        if finding is not None:
            accounts = accounts.where(account_condition(finding, params))
        chosen = accounts.order_by(col(ZoomUser.id)).limit(limit).cte("page_accounts")
        emails = select(chosen.c.email).scalar_subquery()
        page_ids = select(chosen.c.id).scalar_subquery()
    act = _account_activity(params, dialect, emails)
    last_at = _later(act.c.last_at, col(u.last_login_time))
    last_sign_in = _later(act.c.last_sign_in_at, col(u.last_login_time))
    sign_ins = _larger(func.coalesce(act.c.event_sign_ins, 0),
                       func.coalesce(act.c.summary_sign_ins, 0))
    created = type_coerce(func.coalesce(u.zoom_created_at, u.first_seen_at), UTCDateTime())
    cutoff = _instant(params.cutoff)
    idle = or_(last_at.is_(None), last_at < cutoff)
    privileged = or_(col(u.role_id).in_(PRIVILEGED_ROLE_IDS),
                     col(ZoomRole.admin_privileges).is_(True))
    leaver = and_(
        col(Identity.id).is_not(None), u.status == "active",
        or_(col(Identity.status).in_(LEAVER_STATUSES),
            and_(col(Identity.terminated_at).is_not(None),
                 col(Identity.terminated_at) <= _instant(params.now))),
    )
    conditions: dict[str, ColumnElement[bool]] = {
        "orphan": col(AccountCorrelation.identity_id).is_(None),
        "leaver": leaver,
        "unused_licence": and_(u.type == 2, idle),
        "idle_privileged": and_(privileged, idle),
        "never_used": and_(u.status != "pending", created < cutoff, last_at.is_(None)),
        "pending_invitation": and_(u.status == "pending", created < cutoff),
    }
    assert tuple(conditions) == FINDINGS
    query = (
        select(
            col(u.id), col(u.source_id), col(u.zoom_id), col(u.email), col(u.display_name),
            col(u.first_name), col(u.last_name), col(u.status), col(u.type), col(u.role_id),
            # Decoded only for the rows that are shown (to_review): most of a page's are not.
            cast(u.group_ids, String).label("group_ids"), col(ZoomRole.name).label("role"),
            type_coerce(privileged, Boolean).label("privileged"),
            col(Identity.id).label("identity_id"),
            col(Identity.external_id).label("identity_external_id"),
            col(Identity.status).label("identity_status"),
            col(Identity.terminated_at).label("identity_terminated_at"),
            created.label("created_at"), last_sign_in.label("last_sign_in_at"),
            last_at.label("last_activity_at"),
            cast(func.coalesce(act.c.days, 0), Integer).label("days_active"),
            cast(sign_ins, Integer).label("sign_ins"),
            # One integer for the six conditions (bit i: FINDINGS[i]): a narrower row, and one
            # lookup per row instead of six attribute reads (the page's per-row cost).
            reduce(operator.add, (case((c, 1 << i), else_=0)
                                  for i, c in enumerate(conditions.values())))
            .label("finding_flags"),
        )
        .select_from(u)
        .outerjoin(ZoomRole, and_(col(ZoomRole.source_id) == u.source_id,
                                  col(ZoomRole.zoom_id) == u.role_id))
        .outerjoin(AccountCorrelation, and_(col(AccountCorrelation.source_id) == u.source_id,
                                            col(AccountCorrelation.user_zoom_id) == u.zoom_id))
        .outerjoin(Identity, col(Identity.id) == AccountCorrelation.identity_id)
        .outerjoin(act, and_(act.c.sid == u.source_id, act.c.email == email))
        .where(col(u.tenant_id) == params.tenant_id, col(u.deleted_at).is_(None))
    )
    if params.source_id is not None:
        query = query.where(col(u.source_id) == params.source_id)
    if page_ids is not None:
        # Only the page's accounts: the aggregates were computed for no others.
        query = query.where(col(u.id).in_(page_ids))
    groups = {
        (sid, zid): name for sid, zid, name in session.execute(
            select(col(ZoomGroup.source_id), col(ZoomGroup.zoom_id), col(ZoomGroup.name))
            .where(col(ZoomGroup.tenant_id) == params.tenant_id)
        )
    }
    average = tenant_average_sign_ins(session, params.tenant_id, params.since)
    return Review(params=params, select=query, conditions=conditions, groups=groups,
                  average=average)


def to_review(review: Review, row: Any) -> AccountReview:
    sign_ins = int(row.sign_ins or 0)
    average = review.average
    # Columns of our own tables, already of the schema's types: validating each of 100,000 rows
    # again was most of the export's time.
    return AccountReview.model_construct(
        account_id=row.id,
        source_id=row.source_id,
        zoom_id=row.zoom_id,
        email=row.email,
        display_name=row.display_name or f"{row.first_name} {row.last_name}".strip(),
        status=row.status,
        type=row.type,
        role_id=row.role_id,
        role=row.role,
        privileged=bool(row.privileged),
        groups=[review.groups.get((row.source_id, str(g)), str(g))
                for g in json.loads(row.group_ids or "[]")],
        identity_id=row.identity_id,
        identity_external_id=row.identity_external_id,
        identity_status=row.identity_status,
        identity_terminated_at=as_utc(row.identity_terminated_at),
        created_at=as_utc(row.created_at),
        last_sign_in_at=as_utc(row.last_sign_in_at),
        last_activity_at=as_utc(row.last_activity_at),
        days_active=int(row.days_active or 0),
        sign_ins=sign_ins,
        sign_ins_vs_average=round(sign_ins / average, 3) if average else None,
        findings=row_findings(row),
    )


def iter_rows(
    session: Session,
    review: Review,
    finding: str | None = None,
    after_id: int | None = None,
    limit: int | None = None,
) -> Iterator[Any]:
    """The review's database rows in account id order, streamed (a server-side cursor on
    Postgres); ``to_review`` makes one an ``AccountReview``."""
    query = review.select
    if finding is not None:
        query = query.where(review.conditions[finding])
    if after_id is not None:
        query = query.where(col(ZoomUser.id) > after_id)
    query = query.order_by(col(ZoomUser.id))
    if limit is not None:
        query = query.limit(limit)
    # The EXISTS probes of a filtered page (``account_condition``) put Postgres' estimate in
    # the tens of millions although the page runs in a few hundred milliseconds; compiling its
    # ~200 functions took 9 s at 10,000 accounts (bench/RESULTS.md). The unfiltered review is
    # estimated below jit_above_cost, so this changes nothing there.
    sql.without_jit(session)
    # Core, not ORM, execution: the ORM's per-row loading was most of a 10,000-row page's time.
    result = session.connection().execute(query.execution_options(yield_per=STREAM_BATCH))
    try:
        yield from result
    finally:
        result.close()


def iter_accounts(
    session: Session,
    review: Review,
    finding: str | None = None,
    after_id: int | None = None,
    limit: int | None = None,
) -> Iterator[AccountReview]:
    for row in iter_rows(session, review, finding, after_id, limit):
        yield to_review(review, row)


# The findings of every value of ``finding_flags``.
_BY_FLAGS: tuple[tuple[Finding, ...], ...] = tuple(
    tuple(name for i, name in enumerate(FINDINGS) if flags >> i & 1)
    for flags in range(1 << len(FINDINGS))
)


def row_findings(row: Any) -> list[Finding]:
    return list(_BY_FLAGS[row.finding_flags])


def count_accounts(session: Session, review: Review) -> int:
    query = select(func.count()).select_from(review.select.subquery())
    return int(session.execute(query).scalar_one())


def daily_active_accounts(session: Session, params: ReviewParams) -> list[DayCount]:
    """Accounts (not deleted) with any activity, per UTC day of the window, zeros included."""
    dialect = sql.dialect(session)
    rows = active_days(params, dialect)
    query = (
        select(rows.c.day, func.count())
        .select_from(rows)
        .join(ZoomUser, and_(col(ZoomUser.source_id) == rows.c.sid,
                             func.lower(ZoomUser.email) == rows.c.email))
        .where(col(ZoomUser.tenant_id) == params.tenant_id, col(ZoomUser.deleted_at).is_(None))
        .group_by(rows.c.day)
    )
    if params.source_id is not None:
        query = query.where(col(ZoomUser.source_id) == params.source_id)
    counts: dict[date, int] = {}
    for day, n in session.execute(query):
        key = day if isinstance(day, date) else date.fromisoformat(str(day))
        counts[key] = int(n)
    today = params.now.astimezone(UTC).date()
    span = (today - params.since_day).days
    return [DayCount(day=d, accounts=counts.get(d, 0))
            for d in (params.since_day + timedelta(days=k) for k in range(span + 1))]


def bucket_label(index: int) -> str:
    bounds = DAYS_ACTIVE_BUCKETS
    if index == 0:
        return "0"
    if index < len(bounds):
        return f"{bounds[index - 1] + 1}-{bounds[index]}"
    return f"{bounds[-1] + 1}+"


def bucket_of(days_active: int) -> int:
    for index, bound in enumerate(DAYS_ACTIVE_BUCKETS):
        if days_active <= bound:
            return index
    return len(DAYS_ACTIVE_BUCKETS)


@dataclass
class Tally:
    """Counts gathered while the rows stream past (one pass serves the summary and the page)."""

    accounts: int = 0
    licences: int = 0
    findings: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINDINGS, 0))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DAYS_ACTIVE_BUCKETS) + 1))

    def add(self, row: AccountReview) -> None:
        self.count(row.type, row.days_active, row.findings)

    def count(self, type_: int | None, days_active: int, findings: Sequence[str]) -> None:
        self.accounts += 1
        self.licences += type_ == 2
        for name in findings:
            self.findings[name] += 1
        self.buckets[bucket_of(days_active)] += 1

    def summary(self, review: Review, daily: list[DayCount]) -> ReviewSummary:
        unused = self.findings["unused_licence"]
        return ReviewSummary(
            generated_at=review.params.now,
            days=review.params.days,
            window_days=review.params.window_days,
            accounts=self.accounts,
            findings=dict(self.findings),
            licences=self.licences,
            unused_licences=unused,
            unused_licence_share=round(unused / self.licences, 4) if self.licences else None,
            tenant_average_sign_ins=review.average,
            days_active_distribution=[Bucket(label=bucket_label(i), accounts=n)
                                      for i, n in enumerate(self.buckets)],
            daily_active_accounts=daily,
        )


def summarise(session: Session, review: Review) -> ReviewSummary:
    tally = Tally()
    for row in iter_rows(session, review):
        tally.count(row.type, int(row.days_active or 0), row_findings(row))
    return tally.summary(review, daily_active_accounts(session, review.params))


def shown_rows(session: Session, review: Review, per_finding: int) -> tuple[Tally, list[Any]]:
    """What the report page needs, in one statement: the review's totals (``Tally``) and only
    the rows its tables show, the first ``per_finding`` accounts (by id) of each finding.

    Running counts in account id order (one window, one pass over the sorted rows) rank each
    row within its findings, and on the last account they are the totals; so about
    ``6 x per_finding`` rows leave the database instead of every account (at 10,000 accounts,
    fetching and tallying every row in Python was half the page's time; bench/RESULTS.md).
    Each returned row carries ``rank_<finding>`` (its 1-based position among the accounts with
    that finding, else 0); the last account always comes back, for the totals."""
    # OFFSET 0 keeps Postgres from flattening the review into this query, which would evaluate
    # its finding_flags and days_active expressions again at every window that reads them.
    base = review.select.offset(0).subquery("review")
    flags = base.c.finding_flags
    bits = {name: bits_of(flags, i) for i, name in enumerate(FINDINGS)}
    in_order = {"order_by": base.c.id}

    def running(condition: Any, name: str) -> Any:
        return func.sum(case((condition, 1), else_=0)).over(**in_order).label(name)

    days = base.c.days_active
    bucket = case(*((days <= bound, i) for i, bound in enumerate(DAYS_ACTIVE_BUCKETS)),
                  else_=len(DAYS_ACTIVE_BUCKETS))
    buckets = range(len(DAYS_ACTIVE_BUCKETS) + 1)
    ranked = select(
        base,
        func.row_number().over(**in_order).label("c_accounts"),
        running(base.c.type == 2, "c_licences"),
        *(running(bit, f"c_{name}") for name, bit in bits.items()),
        *(running(bucket == i, f"c_bucket_{i}") for i in buckets),
        func.lead(base.c.id).over(**in_order).is_(None).label("is_last"),
    ).subquery("ranked")
    c = ranked.c
    ranks = [case((bits_of(c.finding_flags, i), c[f"c_{name}"]), else_=0).label(f"rank_{name}")
             for i, name in enumerate(FINDINGS)]
    shown = or_(c.is_last, *(and_(bits_of(c.finding_flags, i), c[f"c_{name}"] <= per_finding)
                             for i, name in enumerate(FINDINGS)))
    sql.without_jit(session)  # as in `iter_rows`
    rows = list(session.connection().execute(
        select(ranked, *ranks).where(shown).order_by(c.id)))
    tally = Tally()
    if rows:
        last = rows[-1]
        tally.accounts, tally.licences = int(last.c_accounts), int(last.c_licences)
        tally.findings = {name: int(getattr(last, f"c_{name}")) for name in FINDINGS}
        tally.buckets = [int(getattr(last, f"c_bucket_{i}")) for i in buckets]
    return tally, rows


def bits_of(flags: Any, index: int) -> Any:
    """``flags`` has bit ``index`` set (Postgres and SQLite both have ``&``)."""
    return flags.op("&")(1 << index) != 0
