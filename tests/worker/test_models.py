from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from tests.factories import make_source, make_tenant
from worker.db import get_for_tenant, tenant_query
from worker.models import (
    ActivityEvent,
    Identity,
    Source,
    SyncRun,
    Tenant,
    ZoomGroupMember,
    ZoomUser,
)


def test_source_round_trips_with_defaults(session: Session) -> None:
    tenant = make_tenant(session)
    source = make_source(session, tenant, name="zoom-prod")
    session.expire_all()
    loaded = session.get(Source, source.id)
    assert loaded is not None
    assert loaded.name == "zoom-prod"
    assert loaded.aggregation_enabled
    assert loaded.activity_enabled
    assert loaded.status == "new"
    assert loaded.correlation_config == {"email": True, "employee_unique_id": True}
    assert loaded.created_at.tzinfo is not None


def test_source_name_is_unique_per_tenant_only(session: Session) -> None:
    a, b = make_tenant(session), make_tenant(session)
    make_source(session, a, name="zoom")
    make_source(session, b, name="zoom")  # another tenant may reuse the name
    with pytest.raises(IntegrityError):
        make_source(session, a, name="zoom")


def test_zoom_ids_are_unique_per_source_not_globally(session: Session) -> None:
    tenant = make_tenant(session)
    s1, s2 = make_source(session, tenant), make_source(session, tenant)
    for source in (s1, s2):
        session.add(ZoomUser(tenant_id=tenant.id, source_id=source.id, zoom_id="u1"))
    session.flush()
    session.add(ZoomUser(tenant_id=tenant.id, source_id=s1.id, zoom_id="u1"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_activity_event_key_rejects_a_duplicate(session: Session) -> None:
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    when = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    for _ in range(2):
        session.add(
            ActivityEvent(
                tenant_id=tenant.id, source_id=source.id, event_key="k" * 64,
                email="a@example.com", time=when, type="Sign in",
            )
        )
    with pytest.raises(IntegrityError):
        session.flush()


def test_membership_unique_per_group_and_user(session: Session) -> None:
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    for _ in range(2):
        session.add(ZoomGroupMember(tenant_id=tenant.id, source_id=source.id,
                                    group_zoom_id="g", user_zoom_id="u"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_tenant_query_cannot_return_another_tenants_rows(session: Session) -> None:
    a, b = make_tenant(session), make_tenant(session)
    sa_, sb = make_source(session, a), make_source(session, b)
    session.add(Identity(tenant_id=a.id, external_id="x", email="x@a.example"))
    session.add(Identity(tenant_id=b.id, external_id="x", email="x@b.example"))
    session.flush()
    assert [s.id for s in session.exec(tenant_query(Source, a.id))] == [sa_.id]
    emails = [i.email for i in session.exec(tenant_query(Identity, b.id))]
    assert emails == ["x@b.example"]
    assert get_for_tenant(session, Source, a.id, sb.id) is None
    assert get_for_tenant(session, Source, b.id, sb.id) is not None
    with pytest.raises(TypeError):
        tenant_query(Tenant, a.id)


def test_deleting_a_tenant_cascades_to_its_rows(session: Session) -> None:
    tenant = make_tenant(session)
    source = make_source(session, tenant)
    session.add(SyncRun(tenant_id=tenant.id, source_id=source.id, kind="aggregation"))
    session.flush()
    source_id = source.id
    session.delete(tenant)
    session.flush()
    session.expunge_all()
    assert session.exec(select(SyncRun).where(SyncRun.source_id == source_id)).all() == []
    assert session.get(Source, source_id) is None
