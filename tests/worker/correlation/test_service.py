"""Correlation of Zoom accounts to tenant identities: by email (any case), then employee id.

The rules are tested on the plain body (`correlate`) with a rolled-back session; one test goes
through the entry point (`run_correlation`: the hold, committed data) for the run's record."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session, select

from tests.factories import make_source, make_tenant
from worker.correlation.service import correlate, run_correlation
from worker.db import session_scope
from worker.models import (
    AccountCorrelation,
    Identity,
    RunKind,
    RunStatus,
    Source,
    SyncRun,
    Tenant,
    ZoomUser,
)


def setup(session: Session, config=None) -> tuple[uuid.UUID, uuid.UUID]:
    tenant = make_tenant(session)
    source = make_source(session, tenant, correlation_config=config or
                         {"email": True, "employee_unique_id": True})
    users = [("z1", "Ada@Example.com", None), ("z2", "bob@example.com", "E-2"),
             ("z3", "carol@elsewhere.com", "E-3"), ("z4", "dan@example.com", None)]
    for zoom_id, email, emp in users:
        session.add(ZoomUser(tenant_id=tenant.id, source_id=source.id, zoom_id=zoom_id,
                             email=email, employee_unique_id=emp))
    for ext, email in [("E-1", "ada@example.com"), ("E-2", "robert@example.com"),
                       ("E-3", "carol@example.com")]:
        session.add(Identity(tenant_id=tenant.id, external_id=ext, email=email,
                             email_normalized=email.lower()))
    session.flush()
    return tenant.id, source.id


def new_run(session: Session, source_id: uuid.UUID) -> SyncRun:
    source = session.get_one(Source, source_id)
    run = SyncRun(tenant_id=source.tenant_id, source_id=source_id, kind=RunKind.CORRELATION)
    session.add(run)
    session.flush()
    return run


def run_once(session: Session, source_id: uuid.UUID) -> SyncRun:
    run = new_run(session, source_id)
    correlate(session, run)
    session.commit()
    return run


def links(session: Session, source_id: uuid.UUID) -> dict[str, str]:
    rows = session.exec(select(AccountCorrelation, Identity).join(
        Identity, Identity.id == AccountCorrelation.identity_id).where(
        AccountCorrelation.source_id == source_id)).all()
    return {c.user_zoom_id: f"{i.external_id}/{c.method}" for c, i in rows}


def test_accounts_match_by_email_then_employee_id_and_a_rerun_changes_nothing(
        session: Session) -> None:
    _, source_id = setup(session)
    run = run_once(session, source_id)
    assert run.status == RunStatus.SUCCEEDED
    assert links(session, source_id) == {"z1": "E-1/email", "z2": "E-2/employee_unique_id",
                                         "z3": "E-3/employee_unique_id"}
    assert (run.details["correlated"], run.details["uncorrelated"]) == (3, 1)
    first = links(session, source_id)
    again = run_once(session, source_id)
    assert (again.inserted, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 3)
    assert links(session, source_id) == first


def test_rules_are_configurable_per_source_and_stale_links_go(session: Session) -> None:
    _, source_id = setup(session, {"email": True, "employee_unique_id": False})
    run_once(session, source_id)
    assert links(session, source_id) == {"z1": "E-1/email"}
    ada = session.exec(select(ZoomUser).where(ZoomUser.source_id == source_id,
                                              ZoomUser.zoom_id == "z1")).one()
    ada.email = "someone.else@example.com"
    run = run_once(session, source_id)
    assert links(session, source_id) == {}
    assert run.deleted == 1


def test_a_split_activity_source_correlates_against_its_governance_source(
        session: Session) -> None:
    tenant_id, governance_id = setup(session)
    activity = make_source(session, session.get_one(Tenant, tenant_id),
                           governance_source_id=governance_id, aggregation_enabled=False)
    run = run_once(session, activity.id)
    assert run.details["accounts_source_id"] == str(governance_id)
    assert set(links(session, governance_id)) == {"z1", "z2", "z3"}


@pytest.mark.usefixtures("clean_db")
def test_the_task_entry_records_the_run_once_and_a_second_delivery_does_nothing() -> None:
    with session_scope() as session:
        _, source_id = setup(session)
        run_id = new_run(session, source_id).id
    run = run_correlation(run_id)
    assert run.status == RunStatus.SUCCEEDED
    assert run.details["attempts"] == 1
    with session_scope() as session:
        assert len(links(session, source_id)) == 3
        finished_at = session.get_one(SyncRun, run_id).finished_at
    again = run_correlation(run_id)
    assert again.status == RunStatus.SUCCEEDED
    assert again.details["attempts"] == 1  # not begun again
    assert again.finished_at == finished_at
