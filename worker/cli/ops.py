"""What the CLI does to the database, as plain functions (tests call them without typer).

Rows are created and committed first, then the task is enqueued by name with ids only
(`worker.dispatch`): a fast worker must never look for a row that is not committed yet. If the
broker refuses, the row is marked so nobody waits on it forever, and the caller gets a `CliError`.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import func
from sqlmodel import Session, col, select

from worker import dispatch
from worker.cli.errors import EXIT_UNAVAILABLE, CliError
from worker.kit.crypto import encrypt_json
from worker.models import (
    ApiKey,
    ConnectionTest,
    GrantType,
    RunKind,
    RunStatus,
    RunTrigger,
    Source,
    SourceStatus,
    SyncRun,
    Tenant,
    TestStatus,
    ZoomPlan,
    utcnow,
)

REQUIRED_CREDENTIALS: dict[GrantType, tuple[str, ...]] = {
    GrantType.ACCOUNT_CREDENTIALS: ("account_id", "client_id", "client_secret"),
    GrantType.REFRESH_TOKEN: ("client_id", "client_secret", "refresh_token"),
}
FINAL_TEST = {TestStatus.SUCCEEDED, TestStatus.FAILED}
FINAL_RUN = {
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.RETRYABLE,
    RunStatus.DEFERRED,
    RunStatus.SKIPPED,
}


# --- tenants and keys ---------------------------------------------------------------------


def resolve_tenant(session: Session, ref: str) -> Tenant:
    """A tenant by id, unique id prefix (8+ characters) or name."""
    ref = ref.strip()
    by_name = session.exec(select(Tenant).where(Tenant.name == ref)).first()
    if by_name is not None:
        return by_name
    matches = _by_id_prefix(session, Tenant, ref)
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise CliError(f"tenant {ref!r} is ambiguous: give more of its id")
    raise CliError(f"no tenant {ref!r} (see `activity-insights status`)")


def create_tenant(session: Session, name: str) -> Tenant:
    name = name.strip()
    if not name:
        raise CliError("a tenant needs a name")
    if session.exec(select(Tenant).where(Tenant.name == name)).first() is not None:
        raise CliError(f"a tenant named {name!r} already exists")
    tenant = Tenant(name=name)
    session.add(tenant)
    session.commit()
    return tenant


def create_key(
    session: Session, tenant_ref: str | None, name: str, admin: bool
) -> tuple[ApiKey, str]:
    """Create an API key; returns the row and the key itself, which is never stored."""
    # The API verifies keys with these functions: one format, one hash.
    from api.keys import display_prefix, generate_key, hash_key

    if admin == (tenant_ref is not None):
        raise CliError("give either --tenant (a tenant key) or --admin (an admin key)")
    tenant = resolve_tenant(session, tenant_ref) if tenant_ref else None
    plain = generate_key()
    row = ApiKey(
        tenant_id=tenant.id if tenant else None,
        is_admin=admin,
        name=name,
        prefix=display_prefix(plain),
        key_hash=hash_key(plain),
    )
    session.add(row)
    session.commit()
    return row, plain


# --- sources ------------------------------------------------------------------------------


def _by_id_prefix(session: Session, model: Any, ref: str) -> list[Any]:
    try:
        return [x for x in [session.get(model, uuid.UUID(ref))] if x is not None]
    except ValueError:
        pass
    if len(ref) < 8 or any(c not in "0123456789abcdef-" for c in ref.lower()):
        return []
    # Prefixes are for humans copying from `status`; a table scan of ids is fine at that scale.
    rows = session.exec(select(model)).all()
    return [r for r in rows if str(r.id).startswith(ref.lower())]


def resolve_source(session: Session, ref: str, tenant_ref: str | None = None) -> Source:
    """A source by id, id prefix, name, or ``tenant/name``; names are unique per tenant only."""
    ref = ref.strip()
    tenant = resolve_tenant(session, tenant_ref) if tenant_ref else None
    if tenant is None and "/" in ref:
        tenant_part, _, name_part = ref.rpartition("/")
        try:
            tenant = resolve_tenant(session, tenant_part)
            ref = name_part
        except CliError:
            pass
    query = select(Source).where(Source.name == ref)
    if tenant is not None:
        query = query.where(Source.tenant_id == tenant.id)
    named = list(session.exec(query))
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise CliError(
            f"{len(named)} tenants have a source named {ref!r}: "
            "use TENANT/NAME, --tenant, or the source id"
        )
    matches = [
        s for s in _by_id_prefix(session, Source, ref) if tenant is None or s.tenant_id == tenant.id
    ]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise CliError(f"source {ref!r} is ambiguous: give more of its id")
    raise CliError(f"no source {ref!r} (see `activity-insights source list`)")


def _check_cron(value: str, option: str) -> str:
    value = value.strip()
    if value and (len(value.split()) != 5 or not croniter.is_valid(value)):
        raise CliError(
            f"{option}: {value!r} is not a five-field cron expression, e.g. '15 2 * * *'"
        )
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except Exception:  # ZoneInfoNotFoundError, ValueError on paths: all mean "not a zone"
        raise CliError(
            f"--timezone: {value!r} is not an IANA time zone, e.g. Europe/Paris"
        ) from None
    return value


def _compute_next_runs(source: Source) -> None:
    """Ask the scheduler for the next run times, when the scheduler is installed; otherwise
    beat fills them in on its next tick."""
    try:
        module = importlib.import_module("worker.scheduling.service")
    except ImportError:
        return
    compute: Callable[..., Any] | None = getattr(module, "compute_next", None)
    if compute is not None:
        compute(source, utcnow())


@dataclass
class NewSource:
    tenant: str
    name: str
    grant_type: GrantType
    credentials: dict[str, str]
    plan: ZoomPlan = ZoomPlan.PRO
    description: str = ""
    owner: str = ""
    aggregation_cron: str = ""
    activity_cron: str = ""
    timezone: str = "UTC"
    rate_share: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def add_source(session: Session, spec: NewSource) -> Source:
    tenant = resolve_tenant(session, spec.tenant)
    name = spec.name.strip()
    if not name:
        raise CliError("a source needs a name")
    exists = session.exec(
        select(Source).where(Source.tenant_id == tenant.id, Source.name == name)
    ).first()
    if exists is not None:
        raise CliError(f"tenant {tenant.name!r} already has a source named {name!r}")
    needed = REQUIRED_CREDENTIALS[spec.grant_type]
    missing = [n for n in needed if not spec.credentials.get(n, "").strip()]
    if missing:
        flags = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise CliError(f"a {spec.grant_type.value} source needs {flags}")
    if spec.rate_share is not None and not 0 < spec.rate_share <= 1:
        raise CliError("--rate-share must be in (0, 1]")
    # Only what the grant type uses is stored: no stray secret lingers in the ciphertext.
    credentials = {n: spec.credentials[n].strip() for n in needed}
    now = utcnow()
    source = Source(
        tenant_id=tenant.id,
        name=name,
        description=spec.description,
        owner=spec.owner,
        grant_type=spec.grant_type,
        zoom_account_id=credentials.get("account_id"),
        credentials_ciphertext=encrypt_json(credentials),
        credentials_version=1,
        credentials_updated_at=now,
        status=SourceStatus.NEW,
        status_message="run a connection test to start syncing",
        plan=spec.plan,
        rate_share=spec.rate_share,
        aggregation_cron=_check_cron(spec.aggregation_cron, "--aggregation-cron"),
        activity_cron=_check_cron(spec.activity_cron, "--activity-cron"),
        timezone=_check_timezone(spec.timezone),
        created_at=now,
        updated_at=now,
        **spec.extra,
    )
    _compute_next_runs(source)
    session.add(source)
    session.commit()
    return source


def list_sources(session: Session, tenant_ref: str | None = None) -> list[tuple[Tenant, Source]]:
    query = select(Tenant, Source).join(Source, col(Source.tenant_id) == col(Tenant.id))
    if tenant_ref:
        tenant = resolve_tenant(session, tenant_ref)
        query = query.where(Tenant.id == tenant.id)
    return [(t, s) for t, s in session.exec(query.order_by(col(Tenant.name), col(Source.name)))]


def disable_source(session: Session, source: Source) -> Source:
    source.status = SourceStatus.DISABLED
    source.status_message = "disabled by an operator"
    source.next_aggregation_at = None
    source.next_activity_at = None
    source.updated_at = utcnow()
    session.add(source)
    session.commit()
    return source


# --- starting work ------------------------------------------------------------------------


def _refuse_disabled(source: Source) -> None:
    if source.status == SourceStatus.DISABLED:
        raise CliError(f"source {source.name!r} is disabled: enable it through the API first")


def _enqueue_or_mark(
    session: Session, row: ConnectionTest | SyncRun, enqueue: Callable[..., str]
) -> None:
    try:
        enqueue(row.id, tenant_id=row.tenant_id, source_id=row.source_id)
    except Exception as exc:
        now = utcnow()
        if isinstance(row, ConnectionTest):
            row.status = TestStatus.FAILED
            row.message = "the task queue was unreachable; run the test again"
        else:
            row.status = RunStatus.RETRYABLE
            row.error_code = "broker_unavailable"
            row.error_message = "the task queue was unreachable; start the run again"
        row.finished_at = now
        session.add(row)
        session.commit()
        raise CliError(
            f"cannot reach the broker (AI_BROKER_URL): {exc}; nothing was started",
            EXIT_UNAVAILABLE,
        ) from None


def start_connection_test(session: Session, source: Source) -> ConnectionTest:
    _refuse_disabled(source)
    test = ConnectionTest(tenant_id=source.tenant_id, source_id=source.id)
    session.add(test)
    session.commit()
    _enqueue_or_mark(session, test, dispatch.enqueue_connection_test)
    return test


def start_run(
    session: Session,
    source: Source,
    kind: RunKind,
    *,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> SyncRun:
    _refuse_disabled(source)
    if window_start and window_end and window_start >= window_end:
        raise CliError("--from must be before --to")
    run = SyncRun(
        tenant_id=source.tenant_id,
        source_id=source.id,
        kind=kind,
        trigger=RunTrigger.CLI,
        window_start=window_start,
        window_end=window_end,
    )
    session.add(run)
    session.commit()
    enqueue = {
        RunKind.AGGREGATION: dispatch.enqueue_aggregation,
        RunKind.CORRELATION: dispatch.enqueue_correlation,
        RunKind.ACTIVITY: dispatch.enqueue_activity_sync,
    }[kind]
    _enqueue_or_mark(session, run, enqueue)
    return run


def in_progress_run(session: Session, skipped: SyncRun) -> SyncRun | None:
    """The run of the same source and kind that made ``skipped`` a duplicate, if any."""
    return session.exec(
        select(SyncRun)
        .where(
            SyncRun.source_id == skipped.source_id,
            SyncRun.kind == skipped.kind,
            col(SyncRun.parent_id).is_(None),
            SyncRun.id != skipped.id,
            col(SyncRun.status).in_((RunStatus.QUEUED, RunStatus.RUNNING)),
        )
        .order_by(col(SyncRun.created_at).desc())
    ).first()


# --- reading progress and status ----------------------------------------------------------


def children(session: Session, run_id: uuid.UUID) -> list[SyncRun]:
    return list(
        session.exec(
            select(SyncRun)
            .where(SyncRun.parent_id == run_id)
            .order_by(col(SyncRun.window_start), col(SyncRun.created_at))
        )
    )


@dataclass
class SourceStatusRow:
    tenant: Tenant
    source: Source
    last_test: ConnectionTest | None
    last_runs: dict[str, SyncRun | None]
    failures_24h: int
    last_failure: SyncRun | None


def status_rows(session: Session, tenant_ref: str | None = None) -> list[SourceStatusRow]:
    since = utcnow() - timedelta(hours=24)
    rows: list[SourceStatusRow] = []
    for tenant, source in list_sources(session, tenant_ref):
        last_test = session.exec(
            select(ConnectionTest)
            .where(ConnectionTest.source_id == source.id)
            .order_by(col(ConnectionTest.created_at).desc())
        ).first()
        last_runs: dict[str, SyncRun | None] = {}
        for kind in RunKind:
            # Top-level runs only: an activity sync's chunks are summed under it.
            last_runs[kind] = session.exec(
                select(SyncRun)
                .where(
                    SyncRun.source_id == source.id,
                    SyncRun.kind == kind,
                    col(SyncRun.parent_id).is_(None),
                )
                .order_by(col(SyncRun.created_at).desc())
            ).first()
        failed = (RunStatus.FAILED, RunStatus.RETRYABLE)
        failures = session.exec(
            select(func.count())
            .select_from(SyncRun)
            .where(
                SyncRun.source_id == source.id,
                col(SyncRun.status).in_(failed),
                col(SyncRun.created_at) >= since,
            )
        ).one()
        last_failure = session.exec(
            select(SyncRun)
            .where(SyncRun.source_id == source.id, col(SyncRun.status).in_(failed))
            .order_by(col(SyncRun.created_at).desc())
        ).first()
        rows.append(
            SourceStatusRow(tenant, source, last_test, last_runs, int(failures), last_failure)
        )
    return rows


def run_totals(session: Session, run: SyncRun) -> dict[str, int]:
    """A run's counts, summed over its chunks when it has any."""
    parts: Sequence[SyncRun] = children(session, run.id) or [run]
    keys = ("pages", "seen", "inserted", "updated", "unchanged", "deleted", "skipped")
    return {k: sum(int(getattr(p, k) or 0) for p in parts) for k in keys}
