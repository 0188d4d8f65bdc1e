"""Shared pieces of the worker's integration tests: the fake's configuration and settings,
counts of what a sync wrote, and the fake's ground truth shaped like our tables.

The `zoom` fixture (a running fake, settings pointing at it) is in `tests/fixtures/zoom.py`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import func
from sqlmodel import Session, SQLModel, col, select

from fakezoom.config import CLASSIC_SCOPES, AccountSpec, AppSpec, FakeZoomConfig
from fakezoom.core import Account, App
from fakezoom.server import FakeZoomServer
from tests.env import zoom_urls
from tests.factories import add_app_source
from worker.activity.service import event_key, participant_key
from worker.aggregation.service import aggregate
from worker.db import session_scope
from worker.models import (
    ActivityEvent,
    ConnectionTest,
    MeetingParticipant,
    RunKind,
    Source,
    SyncRun,
    UserDailySummary,
    ZoomGroupMember,
    ZoomRoleMember,
    ZoomUser,
)
from worker.zoom.client import NoLimiter, ZoomClient

ROLE_SCOPES = [*CLASSIC_SCOPES, "role:read:admin"]
BACKFILL_DAYS = 12


def fake_config(*, users: int = 40, days: int = 10, accounts: int = 2, seed: int = 11,
                **settings: Any) -> FakeZoomConfig:
    """Small accounts; the general app of each has the roles scope, the S2S app has not."""
    specs = [
        AccountSpec(users=users, days=days, events_per_user_per_day=1.0,
                    meetings_per_host_per_day=0.3, max_participants=5, groups=3,
                    apps=[AppSpec(kind="s2s"), AppSpec(kind="general", scopes=ROLE_SCOPES)])
        for _ in range(accounts)
    ]
    settings.setdefault("rate_limits_enabled", False)
    return FakeZoomConfig(seed=seed, plan="business", accounts=specs, **settings)


# What the worker tests run with, on top of the fake's URLs: a short backfill, few retries.
WORKER_SETTINGS = {
    "AI_ACTIVITY_BACKFILL_DAYS": str(BACKFILL_DAYS),
    "AI_ZOOM_MAX_RETRIES": "2",
    "AI_ZOOM_DEADLINE_SECONDS": "30",
}


def worker_env(server: FakeZoomServer) -> dict[str, str]:
    """Settings that point a worker subprocess at the fake."""
    return {**zoom_urls(server), **WORKER_SETTINGS}


@contextmanager
def reading(session: Session | None) -> Iterator[Session]:
    """The test's own (rolled-back) session when it has one, else a committed session."""
    if session is not None:
        yield session
        return
    with session_scope() as committed:
        yield committed


class FakeAppTokens:
    """A source's token straight from the fake, for a service body called without the token
    cache (whose fetcher reads the source's credentials from committed rows)."""

    def __init__(self, server: FakeZoomServer, app: App) -> None:
        self.server, self.app = server, app
        self.token = server.fake.issue_access_token(app).token

    @property
    def access_token(self) -> str:
        return self.token

    def get_token(self) -> FakeAppTokens:
        return self

    def invalidate(self, _token: object) -> None:
        self.token = self.server.fake.issue_access_token(self.app).token


def zoom_client(server: FakeZoomServer, app: App, source_id: uuid.UUID) -> ZoomClient:
    """A Zoom client of the fake app, as `worker.clients.client_for_source` builds it but with
    no shared token cache or rate limiter (the worker tests' fake has rate limits off)."""
    http = server.close_on_stop(httpx.Client())
    return ZoomClient(str(source_id), FakeAppTokens(server, app), NoLimiter(), http,
                      server.api_url)


class Directory:
    """One source of a fake app, aggregated by the plain body on the test's session."""

    def __init__(self, session: Session, server: FakeZoomServer, account: Account,
                 app: App) -> None:
        self.session = session
        self.source_id = add_app_source(account, app, session=session)
        self.client = zoom_client(server, app, self.source_id)

    def aggregate(self) -> SyncRun:
        source = self.session.get_one(Source, self.source_id)
        run = SyncRun(tenant_id=source.tenant_id, source_id=self.source_id,
                      kind=RunKind.AGGREGATION)
        self.session.add(run)
        self.session.flush()
        aggregate(self.session, run, self.client)
        self.session.commit()
        return run


def new_test(source_id: uuid.UUID) -> uuid.UUID:
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        test = ConnectionTest(tenant_id=source.tenant_id, source_id=source_id)
        session.add(test)
        return test.id


def count(model: type[SQLModel], source_id: uuid.UUID, *, live: bool = False,
          session: Session | None = None) -> int:
    with reading(session) as session:
        table: Any = model
        stmt = select(func.count()).select_from(model).where(table.source_id == source_id)
        if live:
            stmt = stmt.where(col(table.deleted_at).is_(None))
        return int(session.exec(stmt).one())


def row_counts(source_id: uuid.UUID, session: Session | None = None) -> dict[str, int]:
    """Every table a sync writes, counted: re-runs must leave these unchanged."""
    from worker.models import (
        AccountCorrelation,
        DailyUsage,
        HostUsage,
        Meeting,
        OperationLog,
        ZoomGroup,
        ZoomRole,
    )

    models: list[type[SQLModel]] = [
        ZoomUser, ZoomGroup, ZoomGroupMember, ZoomRole, ZoomRoleMember, AccountCorrelation,
        ActivityEvent, Meeting, MeetingParticipant, HostUsage, DailyUsage, OperationLog,
        UserDailySummary,
    ]
    return {m.__name__: count(m, source_id, session=session) for m in models}


# -- ground truth --------------------------------------------------------------------------


def window(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    today = today or dt.datetime.now(dt.UTC).date()
    return today - dt.timedelta(days=BACKFILL_DAYS), today


def truth_users(account: Account) -> set[tuple[str, str, str, str]]:
    return {(u["id"], u["email"], u["first_name"], u["status"]) for u in account.all_users()}


def stored_users(source_id: uuid.UUID, session: Session | None = None
                 ) -> set[tuple[str, str, str, str]]:
    # Columns, not ORM rows: a long-lived test session's identity map would answer with the
    # values it loaded before the service's upserts rewrote them.
    with reading(session) as session:
        rows = session.exec(select(ZoomUser.zoom_id, ZoomUser.email, ZoomUser.first_name,
                                   ZoomUser.status).where(
            ZoomUser.source_id == source_id, col(ZoomUser.deleted_at).is_(None))).all()
        return {(z, e, f, st) for z, e, f, st in rows}


def truth_group_members(account: Account) -> set[tuple[str, str]]:
    return {(g["id"], m["id"]) for g in account.groups() for m in account.group_members(g["id"])}


def truth_role_members(account: Account, with_scope: bool) -> set[tuple[str, str]]:
    if with_scope:
        return {(r["id"], m["id"]) for r in account.roles() for m in account.role_members(r["id"])}
    return {(u["role_id"], u["id"]) for u in account.all_users() if u.get("role_id")}


def stored_pairs(model: Any, first: str, source_id: uuid.UUID,
                 session: Session | None = None) -> set[tuple[str, str]]:
    with reading(session) as session:
        rows = session.exec(select(getattr(model, first), model.user_zoom_id).where(
            model.source_id == source_id, col(model.deleted_at).is_(None))).all()
        return {(a, b) for a, b in rows}


def truth_event_keys(account: Account, source_id: uuid.UUID) -> set[str]:
    start, end = window()
    return {event_key(source_id, e) for e in account.events(start, end)}


def stored_event_keys(source_id: uuid.UUID, session: Session | None = None) -> set[str]:
    with reading(session) as session:
        return set(session.exec(select(ActivityEvent.event_key).where(
            ActivityEvent.source_id == source_id)).all())


def truth_participant_keys(account: Account, source_id: uuid.UUID) -> set[str]:
    start, end = window()
    keys = set()
    for meeting in account.meetings(start, end):
        for p in account.participants(meeting["uuid"]):
            keys.add(participant_key(source_id, meeting["uuid"], p))
    return keys


def stored_participant_keys(source_id: uuid.UUID, session: Session | None = None) -> set[str]:
    with reading(session) as session:
        return set(session.exec(select(MeetingParticipant.participant_key).where(
            MeetingParticipant.source_id == source_id)).all())


def _iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def truth_summaries(account: Account) -> dict[tuple[str, dt.date], tuple[int, int, int, int]]:
    """(email, day) -> (sign_ins, hosted, attended, minutes), computed independently of our
    SQL from the fake's own lists, with the definitions in worker/activity/summaries.py."""
    start, end = window()
    out: dict[tuple[str, dt.date], list[Any]] = {}

    def slot(email: str, day: dt.date) -> list[Any]:
        return out.setdefault((email.lower(), day), [0, 0, set(), 0])

    for e in account.events(start, end):
        s = slot(e["email"], _iso(e["time"]).date())
        s[0] += e["type"] == "Sign in"
    for m in account.meetings(start, end):
        slot(m["user_email"], _iso(m["start_time"]).date())[1] += 1
        for p in account.participants(m["uuid"]):
            if not p.get("user_email"):
                continue
            s = slot(p["user_email"], _iso(p["join_time"]).date())
            s[2].add(m["uuid"])
            s[3] += int(p.get("duration") or 0)
    return {k: (v[0], v[1], len(v[2]), v[3] // 60) for k, v in out.items()
            if start <= k[1] <= end}


def truth_sign_in_summaries(account: Account) -> dict[tuple[str, dt.date], int]:
    """(email, day) -> sign-ins, of the days with a sign-in or sign-out: the summaries of a
    sync of the sign-in stream alone, from the fake's own list."""
    start, end = window()
    out: dict[tuple[str, dt.date], int] = {}
    for e in account.events(start, end):
        day = _iso(e["time"]).date()
        if e["email"] and start <= day <= end:
            key = (e["email"].lower(), day)
            out[key] = out.get(key, 0) + (e["type"] == "Sign in")
    return out


def stored_summaries(source_id: uuid.UUID, session: Session | None = None
                     ) -> dict[tuple[str, dt.date], tuple[int, int, int, int]]:
    with reading(session) as session:
        rows = session.exec(select(UserDailySummary.email, UserDailySummary.day,
                                   UserDailySummary.sign_ins, UserDailySummary.meetings_hosted,
                                   UserDailySummary.meetings_attended,
                                   UserDailySummary.meeting_minutes).where(
            UserDailySummary.source_id == source_id)).all()
        return {(email, day): (a, b, c, d) for email, day, a, b, c, d in rows}


def digest(values: Any) -> str:
    return hashlib.sha256(repr(sorted(values)).encode()).hexdigest()


def source_row(source_id: uuid.UUID) -> Source:
    with session_scope() as session:
        return session.get_one(Source, source_id)


def session_for_test() -> Session:
    from worker.db import get_engine

    return Session(get_engine())


def straight_copies(monkeypatch: Any) -> list[str]:
    """What `kit.upsert.Appending` does, in order: "copy" for each COPY it opens straight into
    a table, "fallback" for each time its rows are undone and upserted instead."""
    from worker.kit.upsert import Appending

    seen: list[str] = []
    start, fall_back = Appending._start, Appending._upsert

    def started(self: Appending, *args: Any) -> None:
        seen.append("copy")
        start(self, *args)

    def fell_back(self: Appending, rows: Any) -> Any:
        seen.append("fallback")
        return fall_back(self, rows)

    monkeypatch.setattr(Appending, "_start", started)
    monkeypatch.setattr(Appending, "_upsert", fell_back)
    return seen
