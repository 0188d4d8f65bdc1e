"""A row of a source belongs to that source's tenant, checked by the database itself (one key
on (tenant_id, source_id)), and goes when the tenant goes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, event, func, pool, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from tests.factories import make_source, make_tenant
from worker import migrate
from worker.models import ActivityEvent, Source, Tenant, UserDailySummary

WHEN = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _event(tenant_id: Any, source_id: Any, n: int = 0) -> ActivityEvent:
    return ActivityEvent(tenant_id=tenant_id, source_id=source_id, event_key=f"k{n}",
                         email="a@x.io", time=WHEN, type="Sign in")


def _summary(tenant_id: Any, source_id: Any, n: int = 0) -> UserDailySummary:
    return UserDailySummary(tenant_id=tenant_id, source_id=source_id, email=f"a{n}@x.io",
                            day=date(2026, 11, 30), sign_ins=1)


ROWS: list[Callable[..., SQLModel]] = [_event, _summary]


def _store(session: Session, row: SQLModel) -> None:
    with session.begin_nested():
        session.add(row)
        session.flush()


def _two_tenants(session: Session) -> tuple[Tenant, Source, Tenant, Source]:
    a, b = make_tenant(session), make_tenant(session)
    return a, make_source(session, a), b, make_source(session, b)


@pytest.mark.parametrize("row", ROWS, ids=["activity_event", "user_daily_summary"])
def test_a_row_whose_tenant_is_not_its_sources_is_refused(session: Session, row) -> None:  # type: ignore[no-untyped-def]
    a, source_a, b, _ = _two_tenants(session)
    session.add(row(a.id, source_a.id))
    session.flush()  # its own tenant: stored
    with pytest.raises(IntegrityError, match="source_tenant"):
        _store(session, row(b.id, source_a.id, 1))


def test_deleting_a_tenant_deletes_its_events_and_summaries(session: Session) -> None:
    a, source_a, b, source_b = _two_tenants(session)
    for tenant, source in ((a, source_a), (b, source_b)):
        session.add_all([_event(tenant.id, source.id), _summary(tenant.id, source.id)])
    session.flush()
    session.execute(delete(Tenant).where(Tenant.id == a.id))  # type: ignore[arg-type]
    for model in (ActivityEvent, UserDailySummary):
        left = session.execute(select(model.tenant_id, func.count())  # type: ignore[attr-defined]
                               .group_by(model.tenant_id)  # type: ignore[attr-defined]
                               .where(model.tenant_id.in_([a.id, b.id]))).all()  # type: ignore[attr-defined]
        assert left == [(b.id, 1)], model.__name__


def test_the_demo_sqlite_refuses_it_too(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    migrate.upgrade(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    event.listen(engine, "connect",
                 lambda conn, _record: conn.execute("PRAGMA foreign_keys=ON"))
    try:
        with Session(engine) as session:
            a, source_a, b, _ = _two_tenants(session)
            for row in ROWS:
                with pytest.raises(IntegrityError):
                    _store(session, row(b.id, source_a.id))
            session.add_all([row(a.id, source_a.id) for row in ROWS])
            session.flush()
            session.execute(delete(Tenant).where(Tenant.id == a.id))  # type: ignore[arg-type]
            assert session.scalar(select(func.count()).select_from(ActivityEvent)) == 0
            assert session.scalar(select(func.count()).select_from(UserDailySummary)) == 0
    finally:
        engine.dispose()
