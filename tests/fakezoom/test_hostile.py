"""The client and the services against a hostile Zoom (fakezoom/hostile.py): answers Zoom's OpenAPI
document allows but the faithful fake never gives, hand-made and generated from the document's
response schemas.

Bounded for `make test`; `HOSTILE_EXAMPLES=500 pytest tests/fakezoom/test_hostile.py` runs the
long version (see fakezoom/README.md).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from fakezoom.hostile import (
    LISTS,
    ODD_UUIDS,
    PAGINGS,
    HostileZoom,
    item_schema,
    odd_data,
    status_of,
    strategy_for,
)
from fakezoom.spec import spec_path
from tests.factories import make_source, make_tenant
from worker.activity.planner import day_start
from worker.activity.service import run_chunk
from worker.aggregation.service import run_aggregation
from worker.db import session_scope
from worker.models import (
    ActivityEvent,
    Meeting,
    MeetingParticipant,
    OperationLog,
    RunKind,
    RunStatus,
    Source,
    Stream,
    SyncRun,
    ZoomGroupMember,
    ZoomUser,
)
from worker.zoom.client import NoLimiter, ZoomClient
from worker.zoom.errors import ZoomBadResponse, ZoomError
from worker.zoom.items import ID_MAX_BYTES

pytestmark = pytest.mark.skipif(
    spec_path() is None and not os.environ.get("CI"),
    reason="Zoom's OpenAPI spec not found (set FAKEZOOM_SPEC)",
)

# Bounded for `make test`; raise for a long run.
EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "0")) or None
MAX_PAGES = 40
PAGED = [name for name in LISTS if name not in ("groups", "roles", "daily")]


@dataclass
class Tok:
    access_token: str = "hostile"
    scopes: tuple[str, ...] = ()


class Tokens:
    def get_token(self) -> Tok:
        return Tok()

    def invalidate(self, _token: Tok) -> bool:
        return True


def client_for(zoom: HostileZoom, source_id: uuid.UUID | str = "hostile") -> ZoomClient:
    return ZoomClient(str(source_id), Tokens(), NoLimiter(sleep=lambda _s: None),
                      httpx.Client(transport=zoom.transport()), "https://hostile.test/v2",
                      timeout=5, max_retries=0, deadline_seconds=30, max_pages=MAX_PAGES,
                      sleep=lambda _s: None)


def new_source() -> uuid.UUID:
    with session_scope() as session:
        return make_source(session, make_tenant(session)).id


def new_run(source_id: uuid.UUID, kind: str, stream: str | None = None,
            window: tuple[datetime, datetime] | None = None) -> uuid.UUID:
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        run = SyncRun(tenant_id=source.tenant_id, source_id=source_id, kind=kind, stream=stream,
                      window_start=window[0] if window else None,
                      window_end=window[1] if window else None)
        session.add(run)
        return run.id


def get_run(run_id: uuid.UUID) -> SyncRun:
    with session_scope() as session:
        return session.get_one(SyncRun, run_id)


def run_everything(zoom: HostileZoom, source_id: uuid.UUID, today: date,
                   redis_client: Any) -> list[SyncRun]:
    """Aggregation, then one chunk of each activity stream over the last five days. Failures
    are recorded on the runs (what the tasks do), so they are caught here and read back."""
    client = client_for(zoom, source_id)
    done = []
    agg = new_run(source_id, RunKind.AGGREGATION)
    with contextlib.suppress(ZoomError):
        run_aggregation(agg, client=client, redis_client=redis_client, enqueue=False)
    done.append(get_run(agg))
    now = datetime.combine(today, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    window = (day_start(today - timedelta(days=5)), now)
    for stream in Stream:
        run_id = new_run(source_id, RunKind.ACTIVITY, str(stream), window)
        with contextlib.suppress(ZoomError):
            run_chunk(run_id, client=client, redis_client=redis_client, enqueue=False, now=now)
        done.append(get_run(run_id))
    return done


def assert_named(run: SyncRun) -> None:
    """A run ends succeeded, or failed with a named, recorded error; never "internal error"."""
    assert run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED), (run.status, run.error_message)
    if run.status == RunStatus.FAILED:
        message = run.error_message or ""
        assert "internal error" not in message, message
        assert "GET /" in message, message
        assert str(run.source_id) in message, message


# -- hand-made oddities ------------------------------------------------------------------


@pytest.mark.usefixtures("clean_db")
def test_odd_but_valid_data_is_stored_whole(redis_client: Any) -> None:
    today = date.today()
    zoom = HostileZoom(odd_data(today))
    source_id = new_source()
    runs = run_everything(zoom, source_id, today, redis_client)
    for run in runs:
        assert run.status == RunStatus.SUCCEEDED, (run.kind, run.stream, run.error_message)

    with session_scope() as session:
        users = {u.zoom_id: u for u in session.exec(
            select(ZoomUser).where(ZoomUser.source_id == source_id))}
        long_id = "U" * 100
        assert set(users) == {long_id, "email:pending.only@example.com",
                              "email:required.only@example.com", "inactive-1"}
        assert users[long_id].employee_unique_id == "E" * 300
        assert users[long_id].timezone == "T" * 80
        assert users[long_id].custom_attributes[0]["value"] == "v" * 500
        assert users[long_id].group_ids == ["g/1", "g+2"]
        assert users[long_id].zoom_created_at == datetime(
            today.year, today.month, today.day, 6, 30, tzinfo=UTC) - timedelta(days=2)
        members = set(session.exec(select(ZoomGroupMember.group_zoom_id,
                                          ZoomGroupMember.user_zoom_id)
                                   .where(ZoomGroupMember.source_id == source_id)))
        assert members == {("g/1", long_id), ("g/1", "email:pending.only@example.com")}

        meetings = set(session.exec(select(Meeting.uuid).where(Meeting.source_id == source_id)))
        assert meetings == set(ODD_UUIDS)
        # Each participants call asked for exactly a stored meeting's UUID (none cut, none
        # mis-encoded), and the empty participant was skipped.
        asked = {m for _, m in zoom.requests if m is not None}
        assert asked == set(ODD_UUIDS)
        parts = session.exec(select(MeetingParticipant.meeting_uuid, MeetingParticipant.user_id)
                             .where(MeetingParticipant.source_id == source_id)).all()
        assert len(parts) == 2 * len(ODD_UUIDS)
        assert ("/abc+def//ghi==", "1" * 90) in parts

        events = session.exec(select(ActivityEvent).where(
            ActivityEvent.source_id == source_id)).all()
        # The one from 2001 (outside the window) and the one without a time were not stored.
        assert sorted(e.email for e in events) == ["long.id@example.com",
                                                   "required.only@example.com"]
        assert {len(e.version or "") for e in events} == {150, 0}
        assert session.exec(select(OperationLog.operation_detail)
                            .where(OperationLog.source_id == source_id)).one() == "d" * 5000

    # The aggregation stored every user, group and member: nothing skipped.
    assert runs[0].skipped == 0
    assert "item_warnings" not in runs[0].details
    signins = next(r for r in runs if r.stream == Stream.SIGNINS)
    warnings = signins.details["item_warnings"]
    assert warnings["skipped"] == 2
    assert len(warnings["examples"]) == 2
    assert signins.skipped == 2
    assert any("outside the requested window" in e for e in warnings["examples"])
    meetings_run = next(r for r in runs if r.stream == Stream.MEETINGS)
    assert meetings_run.details["item_warnings"]["skipped_by_kind"] == {
        "participant": len(ODD_UUIDS)}


@pytest.mark.parametrize("paging", [p for p in PAGINGS if p != "honest"])
@pytest.mark.usefixtures("clean_db")
def test_dishonest_paging_fails_the_run_with_a_named_error(
    paging: str, redis_client: Any
) -> None:
    data = {"users": [{"id": f"u{i}", "email": f"u{i}@x.io", "type": 1} for i in range(6)]}
    zoom = HostileZoom(data, paging=paging)
    source_id = new_source()
    run_id = new_run(source_id, RunKind.AGGREGATION)
    with pytest.raises(ZoomBadResponse):
        run_aggregation(run_id, client=client_for(zoom, source_id), redis_client=redis_client,
                        enqueue=False)
    run = get_run(run_id)
    assert run.status == RunStatus.FAILED
    assert "GET /users page" in (run.error_message or "")
    assert str(source_id) in (run.error_message or "")
    assert len(zoom.requests) <= MAX_PAGES


# -- generated from Zoom's response schemas ----------------------------------------------


def _lists(max_items: int) -> Any:
    # Deferred: the spec is read when a test draws, not when the module is collected (and
    # skipped without the spec).
    return st.deferred(lambda: st.fixed_dictionaries({
        name: st.lists(strategy_for(item_schema(name)), max_size=max_items) for name in LISTS
    }))


@settings(max_examples=EXAMPLES or 20, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=_lists(4), paging=st.sampled_from(PAGINGS), serve=st.integers(1, 4))
def test_pagination_ends_on_every_generated_server(
    data: dict[str, list[dict[str, Any]]], paging: str, serve: int
) -> None:
    zoom = HostileZoom(data, paging=paging, serve=serve)
    client = client_for(zoom)
    for name in PAGED:
        path, key = LISTS[name]
        path = path.replace("{groupId}", "g").replace("{roleId}", "r").replace(
            "{userId}", "u").replace("{meetingId}", "m")
        before = len(zoom.requests)
        failed: ZoomBadResponse | None = None
        try:
            items = [i for page in client.iter_pages(path, {}, key) for i in page.items]
        except ZoomBadResponse as exc:
            failed = exc
        if failed is not None:
            assert failed.page is not None
            assert f"GET {path} page {failed.page}" in failed.message
            assert paging != "honest"
        else:
            if paging == "honest":  # /users without a status lists the active ones
                served = [i for i in data[name] if name != "users" or status_of(i) == "active"]
                assert len(items) == len(served)
        assert len(zoom.requests) - before <= MAX_PAGES


def _storable(value: Any) -> bool:
    return (isinstance(value, str) and value != "" and "\x00" not in value
            and len(value.encode()) <= ID_MAX_BYTES)


@settings(max_examples=EXAMPLES or 6, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=_lists(4), paging=st.sampled_from(["honest", "honest", *PAGINGS]))
@pytest.mark.usefixtures("clean_db")
def test_services_survive_spec_generated_data(
    data: dict[str, list[dict[str, Any]]], paging: str, redis_client: Any
) -> None:
    redis_client.flushdb()
    today = date.today()
    zoom = HostileZoom(data, paging=paging)
    source_id = new_source()
    runs = run_everything(zoom, source_id, today, redis_client)
    for run in runs:
        assert_named(run)
    aggregation = runs[0]
    if aggregation.status == RunStatus.SUCCEEDED:
        with session_scope() as session:
            stored = set(session.exec(select(ZoomUser.zoom_id).where(
                col(ZoomUser.source_id) == source_id)))
        # Every user id that can be a key at all is stored exactly as Zoom sent it.
        for user in data["users"]:
            if _storable(user.get("id")) and isinstance(user.get("type"), int) and \
                    -(2**31) <= user["type"] < 2**31 and not isinstance(
                        user.get("verified"), bool):
                assert user["id"] in stored
    meetings = next(r for r in runs if r.stream == Stream.MEETINGS)
    if meetings.status == RunStatus.SUCCEEDED:
        with session_scope() as session:
            uuids = set(session.exec(select(Meeting.uuid).where(
                col(Meeting.source_id) == source_id)))
        # Meeting UUIDs are stored exactly as generated, and each participants call asked
        # Zoom for exactly a stored UUID (never cut, never mis-encoded).
        assert uuids <= {m.get("uuid") for m in data["meetings"]}
        assert {m for _, m in zoom.requests if m is not None} == uuids
        if any(_storable(h.get("id")) for h in data["report_users"]):
            assert uuids == {m["uuid"] for m in data["meetings"] if _storable(m.get("uuid"))}
