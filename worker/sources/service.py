"""Sources: creating one, rotating its credentials, and starting its work.

The API and the CLI both call these plain functions and word their errors at their own edge (a
problem response, a one-line CLI error). Work is started the same way everywhere: the row (a
connection test or a run) is created and committed first, then its task is enqueued by name with
ids only (`worker.dispatch`), so a fast worker never looks for a row that is not committed yet.
If the broker refuses, the row is marked finished (a test `failed`, a run `retryable`) so nobody
waits on it forever, and `QueueUnavailable` is raised.

Errors::

    SourceError
    ├── SourceInvalid(message, field)     input the source cannot take (a ValueError)
    │   └── CredentialsMissing            (grant_type, missing)
    ├── SourceDisabled                    no work starts on a disabled source
    └── QueueUnavailable(row, cause)      the broker refused; the row is marked, nothing runs
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from worker import dispatch
from worker.kit.crypto import CredentialsUnreadable, decrypt_json, encrypt_json
from worker.models import (
    ConnectionTest,
    GrantType,
    RunKind,
    RunStatus,
    RunTrigger,
    Source,
    SourceStatus,
    SyncRun,
    TestStatus,
    utcnow,
)
from worker.runs import lifecycle as runs
from worker.scheduling.service import compute_next

log = logging.getLogger(__name__)

# Which credential fields each grant type needs (account_id is Zoom's account id for S2S apps).
REQUIRED_CREDENTIALS: dict[GrantType, tuple[str, ...]] = {
    GrantType.ACCOUNT_CREDENTIALS: ("account_id", "client_id", "client_secret"),
    GrantType.REFRESH_TOKEN: ("client_id", "client_secret", "refresh_token"),
}
# Kept whatever the grant type: the Secret Token of the app's event subscription (webhooks).
OPTIONAL_CREDENTIALS = ("webhook_secret_token",)


class SourceError(Exception):
    """Base of what this module raises on purpose."""


class SourceInvalid(SourceError, ValueError):
    """Input the source cannot take; ``field`` names it (as the API's body spells it)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CredentialsMissing(SourceInvalid):
    def __init__(self, grant_type: GrantType, missing: list[str]) -> None:
        super().__init__(
            f"credentials for grant type {grant_type.value} need: {', '.join(missing)}",
            field="credentials",
        )
        self.grant_type = grant_type
        self.missing = missing


class SourceDisabled(SourceError):
    def __init__(self, source: Source) -> None:
        super().__init__(f"source {source.name!r} is disabled")
        self.source = source


class QueueUnavailable(SourceError):
    """The broker refused the task of a committed row; the row was marked finished."""

    def __init__(self, row: ConnectionTest | SyncRun, cause: BaseException) -> None:
        super().__init__(f"the task queue is unreachable ({cause}); nothing was started")
        self.row = row
        self.cause = cause


# --- credentials and schedules ------------------------------------------------------------


def required_credentials(grant_type: GrantType) -> tuple[str, ...]:
    return REQUIRED_CREDENTIALS[GrantType(grant_type)]


def missing_credentials(grant_type: GrantType, present: Mapping[str, Any]) -> list[str]:
    """The fields the grant type needs that are absent or blank, in the grant's order."""
    return [n for n in required_credentials(grant_type) if not str(present.get(n) or "").strip()]


def _usable_credentials(grant_type: GrantType, given: Mapping[str, Any]) -> dict[str, str]:
    """Only what the grant type uses is stored: no stray secret lingers in the ciphertext."""
    missing = missing_credentials(grant_type, given)
    if missing:
        raise CredentialsMissing(GrantType(grant_type), missing)
    kept = (*required_credentials(grant_type), *OPTIONAL_CREDENTIALS)
    return {n: str(given[n]).strip() for n in kept if str(given.get(n) or "").strip()}


def stored_credentials(source: Source) -> dict[str, Any]:
    """The source's decrypted credentials; unreadable ones count as none stored (an admin can
    paste them again)."""
    if not source.credentials_ciphertext:
        return {}
    try:
        return decrypt_json(source.credentials_ciphertext)
    except CredentialsUnreadable:
        return {}


def webhook_secret(credentials_ciphertext: str) -> str | None:
    """The Secret Token that signs a source's webhooks (from its stored credentials), or None
    when none is set or they cannot be read."""
    if not credentials_ciphertext:
        return None
    try:
        secret = decrypt_json(credentials_ciphertext).get("webhook_secret_token")
    except CredentialsUnreadable:
        return None
    return str(secret) if secret else None


def schedule(source: Source, now: datetime) -> None:
    """Recompute the source's next run times (after a change of schedule, status or flags)."""
    try:
        compute_next(source, now)
    except Exception:
        # Validation already ran croniter; this guards the pairs it cannot see (cron x zone).
        raise SourceInvalid(
            "the schedule cannot be evaluated in this time zone", field="timezone"
        ) from None


# --- creating and changing sources --------------------------------------------------------


def name_taken(
    session: Session, tenant_id: uuid.UUID, name: str, exclude: uuid.UUID | None = None
) -> bool:
    """Whether another source of the tenant has this name (names are unique per tenant)."""
    query = select(Source).where(Source.tenant_id == tenant_id, Source.name == name)
    if exclude is not None:
        query = query.where(Source.id != exclude)
    return session.exec(query).first() is not None


def new_source(
    tenant_id: uuid.UUID,
    *,
    name: str,
    grant_type: GrantType,
    credentials: Mapping[str, Any],
    source_id: uuid.UUID | None = None,
    now: datetime | None = None,
    **fields: Any,
) -> Source:
    """A new source row (not added to a session): credentials encrypted, status ``new`` until a
    connection test passes. ``fields`` are the other columns (description, plan, crons, ...)."""
    kept = _usable_credentials(grant_type, credentials)
    now = now or utcnow()
    source = Source(
        tenant_id=tenant_id,
        name=name,
        grant_type=grant_type,
        zoom_account_id=kept.get("account_id"),
        credentials_ciphertext=encrypt_json(kept),
        credentials_version=1,
        credentials_updated_at=now,
        status=SourceStatus.NEW,
        status_message="run a connection test to start syncing",
        created_at=now,
        updated_at=now,
        **fields,
    )
    if source_id is not None:
        source.id = source_id
    schedule(source, now)
    return source


def rotate_credentials(
    source: Source,
    *,
    grant_type: GrantType | None = None,
    credentials: Mapping[str, Any] | None = None,
) -> bool:
    """Merge new credentials and/or a new grant type into the source; True when they changed
    (the version is bumped, and a failing source goes back to ``new`` until a test passes)."""
    if credentials is None and grant_type is None:
        return False
    grant_type = grant_type or GrantType(source.grant_type)
    stored = stored_credentials(source)
    merged = {**stored, **(credentials or {})}
    # Fields another grant type needed are dropped, so no stale secret lingers.
    merged = {k: v for k, v in merged.items()
              if k in required_credentials(grant_type) or k in OPTIONAL_CREDENTIALS}
    missing = missing_credentials(grant_type, merged)
    if missing:
        raise CredentialsMissing(grant_type, missing)
    if merged == stored and grant_type == source.grant_type:
        return False
    oauth_changed = grant_type != source.grant_type or any(
        merged.get(n) != stored.get(n) for n in required_credentials(grant_type))
    source.credentials_ciphertext = encrypt_json(merged)
    source.credentials_version += 1
    source.credentials_updated_at = utcnow()
    if not oauth_changed:
        return True  # only the webhook Secret Token: the OAuth state stays as it is
    # S2S apps name their account; refresh-token apps learn it again from Zoom.
    if grant_type == GrantType.ACCOUNT_CREDENTIALS:
        source.zoom_account_id = merged.get("account_id")
    elif grant_type != source.grant_type:
        source.zoom_account_id = None
    source.grant_type = grant_type
    if source.status in {SourceStatus.FAILING, SourceStatus.REAUTHORIZE}:
        source.status = SourceStatus.NEW
        source.status_message = "credentials changed: run a connection test to resume syncing"
    return True


def disable(session: Session, source: Source, by: str) -> None:
    """Disable the source and commit: no scheduled or manual work until it is enabled again.
    ``by`` says who did it, for the status message (``"an admin"``, ``"an operator"``)."""
    source.status = SourceStatus.DISABLED
    source.status_message = f"disabled by {by}"
    source.updated_at = utcnow()
    compute_next(source, source.updated_at)  # a disabled source has no next run
    session.add(source)
    session.commit()


def enable(session: Session, source: Source) -> bool:
    """Enable a disabled source and commit; False when it was not disabled (nothing changes).
    Schedules resume after its next successful connection test."""
    if source.status != SourceStatus.DISABLED:
        return False
    source.status = SourceStatus.NEW
    source.status_message = "enabled: run a connection test to resume syncing"
    source.updated_at = utcnow()
    schedule(source, source.updated_at)
    session.add(source)
    session.commit()
    return True


# --- starting work ------------------------------------------------------------------------


def refuse_disabled(source: Source) -> None:
    if source.status == SourceStatus.DISABLED:
        raise SourceDisabled(source)


def start_connection_test(session: Session, source: Source) -> ConnectionTest:
    """Create and commit a queued connection test of the source, then enqueue it."""
    refuse_disabled(source)
    test = ConnectionTest(tenant_id=source.tenant_id, source_id=source.id,
                          status=TestStatus.QUEUED)
    session.add(test)
    session.commit()
    enqueue_committed(session, test)
    return test


def start_run(
    session: Session,
    source: Source,
    kind: RunKind,
    trigger: RunTrigger,
    window: tuple[datetime | None, datetime | None] = (None, None),
) -> SyncRun:
    """Create and commit a queued run of the source (an activity sync may name its window),
    then enqueue it."""
    refuse_disabled(source)
    run = runs.new_run(source, kind, trigger, window=window)
    session.add(run)
    session.commit()
    enqueue_committed(session, run)
    return run


def enqueue_committed(session: Session, row: ConnectionTest | SyncRun) -> None:
    """Send the task of a row the caller has just committed. If the broker refuses, mark the
    row finished (so nobody polls work that will never run) and raise `QueueUnavailable`."""
    try:
        if isinstance(row, ConnectionTest):
            dispatch.enqueue_connection_test(row.id, tenant_id=row.tenant_id,
                                             source_id=row.source_id)
        else:
            dispatch.enqueue_run(row)
    except Exception as exc:
        _mark_unsent(session, row)
        raise QueueUnavailable(row, exc) from exc


NOT_STARTED = "not started: the task queue was unreachable; nothing ran, run the test again"


def never_started(test: ConnectionTest) -> bool:
    """A test that ended without a worker ever picking it up (its task was never sent): it
    says nothing about the source's credentials."""
    return (test.status == TestStatus.FAILED and test.started_at is None
            and test.message == NOT_STARTED)


def _mark_unsent(session: Session, row: ConnectionTest | SyncRun) -> None:
    if isinstance(row, ConnectionTest):
        row.status = TestStatus.FAILED
        row.message = NOT_STARTED
        # The source keeps its status (the credentials are as good as the last test that ran
        # said), but its message no longer reads as if this test had passed.
        source = session.get(Source, row.source_id)
        if source is not None and source.status != SourceStatus.DISABLED:
            source.status_message = (
                "the last connection test was not started (the task queue was unreachable)"
            )
            session.add(source)
    else:
        row.status = RunStatus.RETRYABLE
        row.error_code = "broker_unavailable"
        row.error_message = "the task queue was unreachable; start the run again"
    row.finished_at = utcnow()
    session.add(row)
    try:
        session.commit()
    except Exception:
        session.rollback()
        log.warning("could not mark unsent %s %s", type(row).__name__, row.id, exc_info=True)
