"""Correlation of Zoom accounts to tenant identities: by email (any case), then employee id."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import select

from tests.factories import make_source, make_tenant
from worker.correlation.service import run_correlation
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


def setup(config=None) -> tuple[uuid.UUID, uuid.UUID]:
    with session_scope() as session:
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
        return tenant.id, source.id


def correlate(source_id: uuid.UUID) -> SyncRun:
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        run = SyncRun(tenant_id=source.tenant_id, source_id=source_id,
                      kind=RunKind.CORRELATION)
        session.add(run)
    return run_correlation(run.id)


def links(source_id: uuid.UUID) -> dict[str, str]:
    with session_scope() as session:
        rows = session.exec(select(AccountCorrelation, Identity).join(
            Identity, Identity.id == AccountCorrelation.identity_id).where(
            AccountCorrelation.source_id == source_id)).all()
        return {c.user_zoom_id: f"{i.external_id}/{c.method}" for c, i in rows}


@pytest.mark.usefixtures("clean_db")
def test_accounts_match_by_email_then_employee_id_and_a_rerun_changes_nothing() -> None:
    _, source_id = setup()
    run = correlate(source_id)
    assert run.status == RunStatus.SUCCEEDED
    assert links(source_id) == {"z1": "E-1/email", "z2": "E-2/employee_unique_id",
                                "z3": "E-3/employee_unique_id"}
    assert (run.details["correlated"], run.details["uncorrelated"]) == (3, 1)
    again = correlate(source_id)
    assert (again.inserted, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 3)
    assert links(source_id) == links(source_id)


@pytest.mark.usefixtures("clean_db")
def test_rules_are_configurable_per_source_and_stale_links_go() -> None:
    _, source_id = setup({"email": True, "employee_unique_id": False})
    correlate(source_id)
    assert links(source_id) == {"z1": "E-1/email"}
    with session_scope() as session:
        ada = session.exec(select(ZoomUser).where(ZoomUser.zoom_id == "z1")).one()
        ada.email = "someone.else@example.com"
    run = correlate(source_id)
    assert links(source_id) == {}
    assert run.deleted == 1


@pytest.mark.usefixtures("clean_db")
def test_a_split_activity_source_correlates_against_its_governance_source() -> None:
    tenant_id, governance_id = setup()
    with session_scope() as session:
        activity = make_source(session, session.get_one(Tenant, tenant_id),
                               governance_source_id=governance_id, aggregation_enabled=False)
        activity_id = activity.id
    run = correlate(activity_id)
    assert run.details["accounts_source_id"] == str(governance_id)
    assert set(links(governance_id)) == {"z1", "z2", "z3"}
