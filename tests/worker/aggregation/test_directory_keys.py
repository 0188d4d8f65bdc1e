"""The directory tables' rows belong to their source's tenant, checked by one key on
(tenant_id, source_id) (migration 1f5e7876a956), and go when the tenant goes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from tests.factories import make_source, make_tenant
from worker.models import Tenant, ZoomGroup, ZoomGroupMember, ZoomRole, ZoomRoleMember, ZoomUser


def _user(tenant_id: Any, source_id: Any, n: int = 0) -> SQLModel:
    return ZoomUser(tenant_id=tenant_id, source_id=source_id, zoom_id=f"u{n}")


def _group(tenant_id: Any, source_id: Any, n: int = 0) -> SQLModel:
    return ZoomGroup(tenant_id=tenant_id, source_id=source_id, zoom_id=f"g{n}")


def _role(tenant_id: Any, source_id: Any, n: int = 0) -> SQLModel:
    return ZoomRole(tenant_id=tenant_id, source_id=source_id, zoom_id=f"r{n}")


def _group_member(tenant_id: Any, source_id: Any, n: int = 0) -> SQLModel:
    return ZoomGroupMember(tenant_id=tenant_id, source_id=source_id, group_zoom_id="g",
                           user_zoom_id=f"u{n}")


def _role_member(tenant_id: Any, source_id: Any, n: int = 0) -> SQLModel:
    return ZoomRoleMember(tenant_id=tenant_id, source_id=source_id, role_zoom_id="r",
                          user_zoom_id=f"u{n}")


def _store(session: Session, row: SQLModel) -> None:
    with session.begin_nested():
        session.add(row)
        session.flush()


ROWS = {"zoom_user": _user, "zoom_group": _group, "zoom_role": _role,
        "zoom_group_member": _group_member, "zoom_role_member": _role_member}


@pytest.mark.parametrize("table", list(ROWS))
def test_a_directory_row_whose_tenant_is_not_its_sources_is_refused(
        session: Session, table: str) -> None:
    a, b = make_tenant(session), make_tenant(session)
    source_a = make_source(session, a)
    make_source(session, b)
    session.add(ROWS[table](a.id, source_a.id))
    session.flush()  # its own tenant: stored
    with pytest.raises(IntegrityError, match=f"fk_{table}_source_tenant"):
        _store(session, ROWS[table](b.id, source_a.id, 1))


def test_deleting_a_tenant_deletes_its_directory_rows(session: Session) -> None:
    a, b = make_tenant(session), make_tenant(session)
    for tenant in (a, b):
        source = make_source(session, tenant)
        session.add_all([row(tenant.id, source.id) for row in ROWS.values()])
    session.flush()
    session.execute(delete(Tenant).where(Tenant.id == a.id))  # type: ignore[arg-type]
    for table, row in ROWS.items():
        model: Any = type(row(a.id, a.id))
        left = session.execute(select(model.tenant_id, func.count())
                               .where(model.tenant_id.in_([a.id, b.id]))
                               .group_by(model.tenant_id)).all()
        assert left == [(b.id, 1)], table
