"""Role privileges: one GET /roles/{roleId} per role during aggregation, stored on the role, and
the documented rule (worker.aggregation.privileges.is_admin) deciding admin roles."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlmodel import select

from tests.factories import add_app_source
from tests.worker.aggregation.test_service import new_run
from worker.aggregation import privileges
from worker.aggregation.service import Pull, run_aggregation
from worker.db import session_scope
from worker.models import RunStatus, Source, ZoomRole, utcnow
from worker.zoom.endpoints import Category, category_for
from worker.zoom.errors import ZoomError, ZoomScopeError


@pytest.mark.parametrize(("names", "admin"), [
    ([], False),
    (["User:Read", "Group:Read", "Recording:Read", "Dashboard:Read"], False),
    (["Recording:Edit", "WebinarSetting:Edit", "ZoomRooms:Edit", "IMGroups:Edit"], False),
    (["User:Edit"], True),
    (["role:edit"], True),  # case-insensitive
    (["Group:Edit"], True),
    (["AccountSetting:Edit"], True),
    (["AccountProfile:Edit"], True),
    (["SubAccount:Edit"], True),
    (["BillingInformation:Edit"], True),
    (["SingleSignOn:Edit"], True),
    (["AccountSetting:Read", "Role:Read", "Billing"], False),
])
def test_admin_privileges_are_any_change_to_who_has_access_or_how_the_account_runs(
    names: list[str], admin: bool
) -> None:
    assert privileges.is_admin(names) is admin


def test_get_role_counts_against_the_light_category_and_its_members_medium() -> None:
    assert category_for("/roles/AbC-1") == Category.LIGHT
    assert category_for("/v2/roles/2") == Category.LIGHT
    assert category_for("/roles/2/members") == Category.MEDIUM


def test_aggregation_stores_each_roles_privileges_with_one_call_per_role(zoom) -> None:
    account = zoom.fake.account(1)  # its general app has role:read:admin
    source_id = add_app_source(account, account.general_app)
    zoom.fake.reset_stats()
    run = run_aggregation(new_run(source_id), enqueue=False)
    assert run.status == RunStatus.SUCCEEDED
    truth = {r["id"]: account.role(r["id"]) for r in account.roles()}
    with session_scope() as session:
        stored = {r.zoom_id: (r.privileges, r.admin_privileges) for r in session.exec(
            select(ZoomRole).where(ZoomRole.source_id == source_id))}
    assert stored == {rid: (role["privileges"], privileges.is_admin(role["privileges"]))
                      for rid, role in truth.items()}
    # Owner and Admin carry admin privileges, Member none; the fake's first custom role only
    # reads and its second manages users (fakezoom/data.py), whatever their names.
    custom = [r["id"] for r in account.roles()[3:]]
    assert [stored[r][1] for r in ("0", "1", "2", *custom)] == [True, True, False, False, True]
    calls = zoom.fake.stats()["accounts"][account.id]["by_endpoint"]["GET /roles/{roleId}"]
    assert calls["requests"] == len(truth)


def test_without_the_roles_scope_no_role_is_asked_for(zoom) -> None:
    account = zoom.fake.account(0)  # its S2S app lacks role:read:admin
    source_id = add_app_source(account, account.s2s_app)
    zoom.fake.reset_stats()
    run = run_aggregation(new_run(source_id), enqueue=False)
    assert run.status == RunStatus.SUCCEEDED
    assert "GET /roles/{roleId}" not in zoom.fake.stats()["accounts"][account.id]["by_endpoint"]
    with session_scope() as session:
        roles = session.exec(select(ZoomRole).where(ZoomRole.source_id == source_id)).all()
    assert roles
    assert all(r.privileges is None and not r.admin_privileges for r in roles)


class Answers:
    """A ZoomApi whose GET /roles/{id} answers from a table (a body or an error to raise)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers, self.paths = answers, []  # type: list[str]

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:  # noqa: ARG002 - the protocol's
        self.paths.append(path)
        answer = self.answers[path.rsplit("/", 1)[-1]]
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    def iter_pages(self, path: str, params: Any, items_key: str) -> Any:  # noqa: ARG002 - the protocol's
        raise AssertionError("not paged")


def _roles(clean_db: Any, *ids: str) -> Pull:  # noqa: ARG001 - requested for its side effect
    with session_scope() as session:
        from worker.models import Tenant

        tenant = Tenant(name=f"t-{uuid.uuid4().hex[:6]}")
        session.add(tenant)
        session.flush()
        source = Source(tenant_id=tenant.id, name="zoom")
        session.add(source)
        session.flush()
        since = utcnow()
        for rid in ids:
            session.add(ZoomRole(tenant_id=tenant.id, source_id=source.id, zoom_id=rid,
                                 name=rid, privileges=["User:Edit"], admin_privileges=True))
        return Pull(run_id=uuid.uuid4(), tenant_id=tenant.id, source_id=source.id,
                    since=since.replace(year=since.year - 1), check=lambda: None)


def _stored(pull: Pull) -> dict[str, tuple[list[str] | None, bool]]:
    with session_scope() as session:
        return {r.zoom_id: (r.privileges, r.admin_privileges) for r in session.exec(
            select(ZoomRole).where(ZoomRole.source_id == pull.source_id))}


def test_a_role_gone_since_the_list_keeps_what_was_stored(clean_db: Any) -> None:
    pull = _roles(clean_db, "gone", "kept-300", "reader")
    client = Answers({
        "gone": ZoomError("GET /roles/gone: Role does not exist.", 1034, 400),
        "kept-300": ZoomError("GET /roles/kept-300: Role not found.", 300, 400),
        "reader": {"id": "reader", "privileges": ["User:Read"]},
    })
    with session_scope() as session:
        privileges.pull_role_privileges(session, client, pull)
    assert _stored(pull) == {"gone": (["User:Edit"], True), "kept-300": (["User:Edit"], True),
                             "reader": (["User:Read"], False)}
    assert len(client.paths) == 3


def test_a_missing_scope_stops_the_calls_and_is_noted_not_failed(clean_db: Any) -> None:
    pull = _roles(clean_db, "a", "b")
    client = Answers({"a": ZoomScopeError("no scope", 4711, 400,
                                          missing=["role:read:role:admin"]),
                      "b": {"privileges": []}})
    with session_scope() as session:
        privileges.pull_role_privileges(session, client, pull)
    assert client.paths == ["/roles/a"]
    assert pull.notes["missing_optional_scopes"] == ["role:read:role:admin"]
    assert _stored(pull)["b"] == (["User:Edit"], True)


def test_another_zoom_error_fails_the_pull(clean_db: Any) -> None:
    pull = _roles(clean_db, "a")
    client = Answers({"a": ZoomError("GET /roles/a: no permission", 200, 400)})
    with session_scope() as session, pytest.raises(ZoomError):
        privileges.pull_role_privileges(session, client, pull)
