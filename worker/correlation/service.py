"""Correlation: which tenant identity owns each Zoom account.

Rules, in order, each switchable per source (`Source.correlation_config`): the Zoom email equals
an identity's email (case-insensitive, through `Identity.email_normalized`), else the Zoom
`employee_unique_id` equals an identity's `external_id`. The result is stored as the full set of
`AccountCorrelation` rows of the source: running it again changes nothing; a link that no longer
matches (or whose account was deleted) is removed.

Split set-up: an activity-only source with `governance_source_id` has no accounts of its own; its
activity belongs to the governance source's accounts, so both correlate against those.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from worker.models import (
    AccountCorrelation,
    Identity,
    RunStatus,
    Source,
    SyncRun,
    ZoomUser,
    utcnow,
)
from worker.models.tenancy import DEFAULT_CORRELATION
from worker.runs import lifecycle as runs
from worker.runs.hold import Admit, Hold, hold

log = logging.getLogger(__name__)


def accounts_source_id(source: Source) -> uuid.UUID:
    """The source whose Zoom accounts this source's activity and identities are matched to."""
    return source.governance_source_id or source.id


def match(
    users: list[tuple[str, str, str | None]],
    identities: list[Identity],
    config: dict[str, Any],
) -> dict[str, tuple[uuid.UUID, str]]:
    """Zoom user id -> (identity id, method), for users as (zoom_id, email, employee_unique_id)."""
    by_email: dict[str, Identity] = {}
    by_external: dict[str, Identity] = {}
    # Sorted so that, when two identities share an email, the same one wins every time.
    for ident in sorted(identities, key=lambda i: i.external_id):
        email = (ident.email_normalized or ident.email or "").strip().lower()
        if email:
            by_email.setdefault(email, ident)
        by_external.setdefault(ident.external_id, ident)
    use_email = bool(config.get("email", True))
    use_employee = bool(config.get("employee_unique_id", True))
    result: dict[str, tuple[uuid.UUID, str]] = {}
    for zoom_id, email, employee in users:
        found = by_email.get((email or "").strip().lower()) if use_email else None
        if found is not None:
            result[zoom_id] = (found.id, "email")
            continue
        if use_employee and employee and employee in by_external:
            result[zoom_id] = (by_external[employee].id, "employee_unique_id")
    return result


def correlate_source(session: Session, source: Source) -> dict[str, int]:
    """Bring the source's correlations in line with its accounts and the tenant's identities."""
    target = accounts_source_id(source)
    config = {**DEFAULT_CORRELATION, **(source.correlation_config or {})}
    users = [
        (z, e, emp)
        for z, e, emp in session.exec(
            select(ZoomUser.zoom_id, ZoomUser.email, ZoomUser.employee_unique_id).where(
                ZoomUser.source_id == target, col(ZoomUser.deleted_at).is_(None)
            )
        ).all()
    ]
    identities = list(session.exec(select(Identity).where(Identity.tenant_id == source.tenant_id)))
    wanted = match(users, identities, config)
    existing = {
        c.user_zoom_id: c
        for c in session.exec(select(AccountCorrelation).where(
            AccountCorrelation.source_id == target))
    }
    counts = {"inserted": 0, "updated": 0, "unchanged": 0, "deleted": 0}
    now = utcnow()
    for zoom_id, (identity_id, method) in wanted.items():
        row = existing.get(zoom_id)
        if row is None:
            session.add(AccountCorrelation(tenant_id=source.tenant_id, source_id=target,
                                           user_zoom_id=zoom_id, identity_id=identity_id,
                                           method=method, correlated_at=now))
            counts["inserted"] += 1
        elif row.identity_id != identity_id or row.method != method:
            row.identity_id, row.method, row.correlated_at = identity_id, method, now
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    stale = [z for z in existing if z not in wanted]
    if stale:
        session.execute(
            delete(AccountCorrelation).where(
                col(AccountCorrelation.source_id) == target,
                col(AccountCorrelation.user_zoom_id).in_(stale),
            )
        )
    counts["deleted"] = len(stale)
    counts["accounts"] = len(users)
    counts["correlated"] = len(wanted)
    counts["uncorrelated"] = len(users) - len(wanted)
    counts["by_email"] = sum(1 for _, m in wanted.values() if m == "email")
    counts["by_employee_unique_id"] = counts["correlated"] - counts["by_email"]
    return counts


CORRELATION = Hold(what="correlation")


def run_correlation(run_id: uuid.UUID, *, admit: Admit | None = None) -> SyncRun:
    """Correlate the run's source; idempotent. Records counts on the run."""
    return hold(run_id, CORRELATION, lambda session, run, _check: correlate(session, run),
                admit=admit)


def correlate(session: Session, run: SyncRun) -> None:
    """Correlate the run's source and finish the run, in the caller's transaction."""
    source = session.get_one(Source, run.source_id)
    # Serialise correlations of one accounts source: two at once would both insert.
    session.get(Source, accounts_source_id(source), with_for_update=True)
    counts = correlate_source(session, source)
    run.seen = counts["accounts"]
    run.inserted, run.updated = counts["inserted"], counts["updated"]
    run.unchanged, run.deleted = counts["unchanged"], counts["deleted"]
    runs.finish(run, RunStatus.SUCCEEDED, **counts,
                accounts_source_id=str(accounts_source_id(source)))
    log.info("correlation %s of %s: %s", run.id, runs.where(source), counts)
