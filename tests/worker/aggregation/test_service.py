"""Aggregation against fakezoom as a real server: rows equal the fake's directory, deltas show,
and a failed pull deletes nothing.

What the pull writes is tested on the plain body (`aggregate`) with a rolled-back session and a
client of the fake app; what the run's record says about a failure or a duplicate goes through
the entry point (`run_aggregation`: the hold) on committed rows."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from fakezoom.server import FakeZoomServer
from tests.factories import add_app_source
from tests.worker.helpers import (
    Directory,
    count,
    row_counts,
    stored_pairs,
    stored_users,
    truth_group_members,
    truth_role_members,
    truth_users,
)
from worker.aggregation import service
from worker.aggregation.service import run_aggregation
from worker.db import session_scope
from worker.models import (
    RunKind,
    RunStatus,
    Source,
    SyncRun,
    ZoomGroupMember,
    ZoomRole,
    ZoomRoleMember,
    ZoomUser,
    utcnow,
)
from worker.zoom.errors import ZoomBadResponse


def new_run(source_id: uuid.UUID, kind: str = RunKind.AGGREGATION) -> uuid.UUID:
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        run = SyncRun(tenant_id=source.tenant_id, source_id=source_id, kind=kind)
        session.add(run)
        return run.id


def get_run(run_id: uuid.UUID) -> SyncRun:
    with session_scope() as session:
        return session.get_one(SyncRun, run_id)


def test_aggregation_stores_the_fakes_directory_and_queues_correlation(
        s2s: Directory, fake_zoom: FakeZoomServer, session: Session) -> None:
    account = fake_zoom.fake.account(0)
    source_id = s2s.source_id
    run = s2s.aggregate()

    assert run.status == RunStatus.SUCCEEDED
    assert stored_users(source_id, session) == truth_users(account)
    assert stored_pairs(ZoomGroupMember, "group_zoom_id", source_id, session) == \
        truth_group_members(account)
    # The S2S app lacks role:read:admin: roles come from the users and the gap is reported.
    assert stored_pairs(ZoomRoleMember, "role_zoom_id", source_id, session) == \
        truth_role_members(account, with_scope=False)
    assert run.details["missing_optional_scopes"] == ["role:read:admin"]
    assert run.details["roles_from_users_only"] is True
    assert run.inserted == len(truth_users(account))
    assert run.deleted == 0
    correlation = session.exec(select(SyncRun).where(
        SyncRun.source_id == source_id, SyncRun.kind == RunKind.CORRELATION)).one()
    assert correlation.status == RunStatus.QUEUED
    assert correlation.lease_until is not None  # stamped as sent: the sweep owns it now
    assert all(r.from_users_only for r in session.exec(
        select(ZoomRole).where(ZoomRole.source_id == source_id)))


def test_with_the_roles_scope_roles_and_members_come_from_zoom(
        session: Session, fake_zoom: FakeZoomServer) -> None:
    account = fake_zoom.fake.account(1)
    general = Directory(session, fake_zoom, account, account.general_app)
    source_id = general.source_id
    run = general.aggregate()
    assert run.status == RunStatus.SUCCEEDED
    assert run.details["missing_optional_scopes"] == []
    assert stored_pairs(ZoomRoleMember, "role_zoom_id", source_id, session) == \
        truth_role_members(account, with_scope=True)


def test_deltas_between_two_aggregations_are_reflected(
        s2s: Directory, fake_zoom: FakeZoomServer, session: Session) -> None:
    account = fake_zoom.fake.account(0)
    source_id = s2s.source_id
    s2s.aggregate()

    users = list(account.all_users("active"))
    renamed, deactivated, deleted = users[1]["id"], users[2]["id"], users[3]["id"]
    groups = account.groups()
    added = account.add_user(email="new.person@example.com", first_name="New",
                             last_name="Person")
    account.rename_user(renamed, "Renamed", "Person")
    account.deactivate_user(deactivated)
    account.delete_user(deleted)
    account.move_user_group(users[4]["id"], None, groups[0]["id"])

    run = s2s.aggregate()
    assert run.status == RunStatus.SUCCEEDED
    assert (run.inserted, run.deleted) == (1, 1)
    assert run.updated >= 2  # renamed and deactivated (a moved user's group_ids change too)
    assert stored_users(source_id, session) == truth_users(account)
    assert stored_pairs(ZoomGroupMember, "group_zoom_id", source_id, session) == \
        truth_group_members(account)
    # Kept for access reviews, marked deleted.
    assert user(session, source_id, deleted).deleted_at is not None
    assert user(session, source_id, renamed).first_name == "Renamed"
    assert added["id"] in {u[0] for u in stored_users(source_id, session)}


def test_a_failed_aggregation_deletes_nothing_and_records_the_error(zoom) -> None:
    account = zoom.fake.account(0)
    source_id = add_app_source(account, account.s2s_app)
    run_aggregation(new_run(source_id), enqueue=False)
    before = count(ZoomUser, source_id, live=True)
    account.delete_user(account.all_users("active")[5]["id"])
    # The second page of users comes back truncated (after page one succeeded).
    zoom.fake.set_faults(malformed_json_next=1, malformed_json_endpoint="/users")

    run_id = new_run(source_id)
    with pytest.raises(ZoomBadResponse):
        run_aggregation(run_id, enqueue=False)
    run = get_run(run_id)
    assert run.status == RunStatus.FAILED
    assert "malformed" in (run.error_message or "")
    assert str(source_id) in (run.error_message or "")
    assert count(ZoomUser, source_id, live=True) == before


def test_rerunning_aggregation_changes_no_row_count(
        s2s: Directory, fake_zoom: FakeZoomServer, session: Session) -> None:
    account = fake_zoom.fake.account(0)
    source_id = s2s.source_id
    s2s.aggregate()
    first = row_counts(source_id, session)
    again = s2s.aggregate()
    assert row_counts(source_id, session) == first
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert again.unchanged == len(truth_users(account))


def test_a_second_aggregation_while_one_holds_the_lock_is_skipped_and_says_so(
    zoom, redis_client
) -> None:
    from worker.kit.locks import LeaseLock

    account = zoom.fake.account(0)
    source_id = add_app_source(account, account.s2s_app)
    holder = LeaseLock(redis_client, f"ai:lock:aggregate:{source_id}", owner="other-run",
                       lease=30)
    assert holder.acquire()
    run = run_aggregation(new_run(source_id), enqueue=False)
    holder.release()
    assert run.status == RunStatus.SKIPPED
    assert "other-run" in (run.error_message or "")
    assert count(ZoomUser, source_id) == 0


def user(session: Session, source_id: uuid.UUID, zoom_id: str) -> ZoomUser:
    """The stored row as it is now (a copy: the session's identity map keeps what it loaded
    before the service's upserts, which write through Core, rewrote it)."""
    row = session.exec(select(ZoomUser).where(ZoomUser.source_id == source_id,
                                              ZoomUser.zoom_id == zoom_id)
                       .execution_options(populate_existing=True)).one()
    return ZoomUser.model_validate(row)


@pytest.fixture(params=["values", "copy"])
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Pages below COPY_THRESHOLD take multi-row VALUES; the fake's are small, so the COPY
    path (Zoom's full 300-row pages) is forced by a threshold of 1."""
    if request.param == "copy":
        monkeypatch.setattr(service, "COPY_THRESHOLD", 1)
    return str(request.param)


@pytest.mark.usefixtures("write_path")
def test_a_no_change_aggregation_only_moves_last_seen(
        s2s: Directory, fake_zoom: FakeZoomServer, session: Session) -> None:
    account = fake_zoom.fake.account(0)
    source_id = s2s.source_id
    s2s.aggregate()
    probe = account.all_users("active")[0]["id"]
    # A stored content column that differs while the hash still matches shows whether the
    # second run rewrote the row's content (it must not: nothing changed at Zoom).
    session.execute(update(ZoomUser).where(ZoomUser.source_id == source_id,
                                           ZoomUser.zoom_id == probe)
                    .values(first_name="Untouched"))
    before = user(session, source_id, probe)

    again = s2s.aggregate()
    after = user(session, source_id, probe)
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert again.unchanged == again.seen == len(truth_users(account))
    counts = again.details["counts"]
    assert counts["group_members"]["unchanged"] == counts["group_members"]["seen"] > 0
    assert counts["group_members"]["updated"] == counts["group_members"]["inserted"] == 0
    assert after.first_name == "Untouched"
    assert after.first_seen_at == before.first_seen_at
    assert after.last_seen_at > before.last_seen_at
    assert session.exec(select(func.count()).select_from(ZoomUser).where(
        ZoomUser.source_id == source_id,
        col(ZoomUser.last_seen_at) < after.last_seen_at)).one() == 0


@pytest.mark.usefixtures("write_path")
def test_a_reappearing_user_counts_as_updated_and_is_live_again(
        s2s: Directory, fake_zoom: FakeZoomServer, session: Session) -> None:
    account = fake_zoom.fake.account(0)
    source_id = s2s.source_id
    s2s.aggregate()
    back = account.all_users("active")[3]["id"]
    # As a complete pull that missed the user (and its memberships) would have left them.
    gone_at = utcnow()
    session.execute(update(ZoomUser).where(ZoomUser.source_id == source_id,
                                           ZoomUser.zoom_id == back)
                    .values(deleted_at=gone_at))
    session.execute(update(ZoomGroupMember).where(ZoomGroupMember.source_id == source_id,
                                                  ZoomGroupMember.user_zoom_id == back)
                    .values(deleted_at=gone_at))
    memberships = session.exec(select(func.count()).select_from(ZoomGroupMember).where(
        ZoomGroupMember.source_id == source_id,
        ZoomGroupMember.user_zoom_id == back)).one()
    before = user(session, source_id, back)

    run = s2s.aggregate()
    after = user(session, source_id, back)
    assert (run.inserted, run.updated, run.deleted) == (0, 1, 0)
    assert run.unchanged == len(truth_users(account)) - 1
    assert run.details["counts"]["group_members"]["updated"] == memberships
    assert after.deleted_at is None
    assert after.first_seen_at == before.first_seen_at
    assert count(ZoomUser, source_id, live=True, session=session) == len(truth_users(account))
    assert stored_pairs(ZoomGroupMember, "group_zoom_id", source_id, session) == \
        truth_group_members(account)


@pytest.mark.parametrize("event", ["user.updated", "user.deleted"])
@pytest.mark.usefixtures("write_path")
def test_a_webhook_between_the_pulls_read_and_its_write_ends_in_zooms_row(
        s2s: Directory, fake_zoom: FakeZoomServer, session: Session,
        monkeypatch: pytest.MonkeyPatch, event: str) -> None:
    """The pull reads the stored keys and hashes once, then writes page by page; a user event
    processed in between rewrites a row the read called unchanged. The row must end as it
    does when the event comes before the pull reads (rewritten whole from Zoom's item)."""
    from worker.webhooks.service import user_event

    account = fake_zoom.fake.account(0)
    source_id = s2s.source_id
    s2s.aggregate()
    probe = account.group_members(account.groups()[0]["id"])[0]["id"]
    before = user(session, source_id, probe)
    source = session.get_one(Source, source_id)
    memberships = session.exec(select(func.count()).select_from(ZoomGroupMember).where(
        ZoomGroupMember.source_id == source_id, ZoomGroupMember.user_zoom_id == probe)).one()
    read = service.read_known

    def read_then_event(db: Session, table, **kw):  # type: ignore[no-untyped-def]
        known = read(db, table, **kw)
        if table.name == ZoomUser.__tablename__:
            status, outcome = user_event(db, source, event, int(utcnow().timestamp() * 1000),
                                         {"id": probe, "first_name": "Webhook"})
            assert status == "processed", outcome
            db.flush()  # as its own transaction would have committed it
        return known

    monkeypatch.setattr(service, "read_known", read_then_event)
    run = s2s.aggregate()
    after = user(session, source_id, probe)
    assert (run.inserted, run.updated, run.deleted) == (0, 1, 0)
    assert run.unchanged == len(truth_users(account)) - 1
    assert stored_users(source_id, session) == truth_users(account)
    assert after.first_name == before.first_name
    assert after.content_hash == before.content_hash != ""
    assert after.deleted_at is None
    assert after.first_seen_at == before.first_seen_at
    assert after.last_seen_at > before.last_seen_at
    if event == "user.deleted":
        assert run.details["counts"]["group_members"]["updated"] == memberships > 0
    assert stored_pairs(ZoomGroupMember, "group_zoom_id", source_id, session) == \
        truth_group_members(account)
