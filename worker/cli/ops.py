"""What the CLI does to the database, as plain functions (tests call them without typer).

Sources are created and work is started by `worker.sources.service`, as the API does; here the
operator's references are resolved and the service's errors become `CliError` lines (an
unreachable broker exits with `EXIT_UNAVAILABLE`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from worker.cli.errors import EXIT_UNAVAILABLE, CliError
from worker.kit.apikeys import display_prefix, generate_key, hash_key
from worker.models import (
    ApiKey,
    ConnectionTest,
    GrantType,
    RunKind,
    RunStatus,
    RunTrigger,
    Source,
    SyncRun,
    Tenant,
    TestStatus,
    ZoomPlan,
    utcnow,
)
from worker.runs.lifecycle import TERMINAL
from worker.scheduling.cron import InvalidSchedule, check_cron
from worker.sources import service as sources
from worker.sources.service import (
    CredentialsMissing,
    QueueUnavailable,
    SourceDisabled,
    SourceInvalid,
)

MIN_PREFIX = 4  # characters of an id that may stand for it when unique
FINAL_TEST = {TestStatus.SUCCEEDED, TestStatus.FAILED}
# What a watcher stops waiting for: a finished run, or a deferred one (it resumes by itself
# later, once the rate cap allows; nothing more happens to it now).
FINAL_RUN = TERMINAL | {RunStatus.DEFERRED}


# --- tenants and keys ---------------------------------------------------------------------


def resolve_tenant(session: Session, ref: str) -> Tenant:
    """A tenant by id, unique id prefix (4+ characters) or name."""
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


_Row = TypeVar("_Row", Tenant, Source)


def _by_id_prefix(session: Session, model: type[_Row], ref: str) -> list[_Row]:
    try:
        return [x for x in [session.get(model, uuid.UUID(ref))] if x is not None]
    except ValueError:
        pass
    # Four characters is what a human reads off `status` (ids are shown as 8); a shorter
    # prefix would match most ids of a small deployment, which helps nobody.
    if len(ref) < MIN_PREFIX or any(c not in "0123456789abcdef-" for c in ref.lower()):
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
    try:
        return check_cron(value)
    except InvalidSchedule as exc:
        raise CliError(f"{option}: {exc}") from None


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except Exception:  # ZoneInfoNotFoundError, ValueError on paths: all mean "not a zone"
        raise CliError(
            f"--timezone: {value!r} is not an IANA time zone, e.g. Europe/Paris"
        ) from None
    return value


# Where `source add` and `source update` read each secret from (else a hidden prompt).
SECRET_ENV = {
    "client_secret": "AI_SOURCE_CLIENT_SECRET",
    "refresh_token": "AI_SOURCE_REFRESH_TOKEN",
    "webhook_secret_token": "AI_SOURCE_WEBHOOK_SECRET_TOKEN",
}


def _credential_hint(name: str) -> str:
    if name in SECRET_ENV:
        return f"{name.replace('_', ' ')} ({SECRET_ENV[name]}, or the prompt in a terminal)"
    return "--" + name.replace("_", "-")


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
    if sources.name_taken(session, tenant.id, name):
        raise CliError(f"tenant {tenant.name!r} already has a source named {name!r}")
    missing = sources.missing_credentials(spec.grant_type, spec.credentials)
    if missing:
        needs = ", ".join(_credential_hint(n) for n in missing)
        raise CliError(f"a {spec.grant_type.value} source needs {needs}")
    if spec.rate_share is not None and not 0 < spec.rate_share <= 1:
        raise CliError("--rate-share must be in (0, 1]")
    aggregation_cron = _check_cron(spec.aggregation_cron, "--aggregation-cron")
    activity_cron = _check_cron(spec.activity_cron, "--activity-cron")
    timezone = _check_timezone(spec.timezone)
    try:
        source = sources.new_source(
            tenant.id, name=name, grant_type=spec.grant_type, credentials=spec.credentials,
            description=spec.description, owner=spec.owner, plan=spec.plan,
            rate_share=spec.rate_share, aggregation_cron=aggregation_cron,
            activity_cron=activity_cron, timezone=timezone, **spec.extra,
        )
    except SourceInvalid as exc:
        raise CliError(str(exc)) from None
    session.add(source)
    session.commit()
    return source


def list_sources(session: Session, tenant_ref: str | None = None) -> list[tuple[Tenant, Source]]:
    query = select(Tenant, Source).join(Source, col(Source.tenant_id) == col(Tenant.id))
    if tenant_ref:
        tenant = resolve_tenant(session, tenant_ref)
        query = query.where(Tenant.id == tenant.id)
    return [(t, s) for t, s in session.exec(query.order_by(col(Tenant.name), col(Source.name)))]


# Columns `source update` may set, with the flag that names each in errors.
UPDATABLE = {
    "aggregation_cron": "--aggregation-cron",
    "activity_cron": "--activity-cron",
    "timezone": "--timezone",
    "aggregation_enabled": "--aggregation/--no-aggregation",
    "activity_enabled": "--activity/--no-activity",
    "plan": "--plan",
    "rate_share": "--rate-share",
    "description": "--description",
    "owner": "--owner",
}


@dataclass
class SourceChanges:
    """What `source update` was asked to change; None (or absent) keeps the stored value."""

    grant_type: GrantType | None = None
    credentials: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


def _flag(name: str) -> str:
    return UPDATABLE.get(name) or "--" + name.replace("_", "-")


def update_source(session: Session, source: Source, changes: SourceChanges) -> list[str]:
    """Apply the changes the way the API's PATCH does (merge and rotate the credentials, set the
    columns, recompute the schedule) and commit; returns the names of what changed. The caller
    drops the cached tokens when "credentials" is among them."""
    fields = {k: v for k, v in changes.fields.items() if v is not None}
    unknown = set(fields) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable here: {sorted(unknown)}")
    for cron in ("aggregation_cron", "activity_cron"):
        if cron in fields:
            fields[cron] = _check_cron(fields[cron], _flag(cron))
    if "timezone" in fields:
        fields["timezone"] = _check_timezone(fields["timezone"])
    share = fields.get("rate_share")
    if share is not None and not 0 < share <= 1:
        raise CliError("--rate-share must be in (0, 1]")
    given = {k: v.strip() for k, v in changes.credentials.items() if v and v.strip()}
    try:
        rotated = sources.rotate_credentials(
            source, grant_type=changes.grant_type, credentials=given or None
        )
    except CredentialsMissing as exc:
        flags = ", ".join(_flag(n) for n in exc.missing)
        raise CliError(
            f"a {exc.grant_type.value} source needs {flags}: give them with this update"
        ) from None
    except SourceInvalid as exc:
        raise CliError(str(exc)) from None
    changed = ["credentials"] if rotated else []
    for name, value in fields.items():
        if getattr(source, name) != value:
            setattr(source, name, value)
            changed.append(name)
    if not changed:
        return []
    now = utcnow()
    try:
        sources.schedule(source, now)
    except SourceInvalid as exc:
        raise CliError(f"{_flag(exc.field or 'timezone')}: {exc}") from None
    source.updated_at = now
    session.add(source)
    session.commit()
    return changed


def enable_source(session: Session, source: Source) -> bool:
    try:
        return sources.enable(session, source)
    except SourceInvalid as exc:
        raise CliError(str(exc)) from None


def disable_source(session: Session, source: Source) -> Source:
    sources.disable(session, source, by="an operator")
    return source


# --- starting work ------------------------------------------------------------------------


@contextmanager
def _starting_work() -> Iterator[None]:
    """The sources service's refusals to start work, as one-line errors."""
    try:
        yield
    except SourceDisabled as exc:
        raise CliError(
            f"source {exc.source.name!r} is disabled: "
            f"`activity-insights source enable {exc.source.name}` first"
        ) from None
    except QueueUnavailable as exc:
        # The row exists (a test or run recorded as not started): say so, as `status` will.
        what = "connection test" if isinstance(exc.row, ConnectionTest) else f"{exc.row.kind} run"
        raise CliError(
            f"cannot reach the broker (AI_BROKER_URL): {_first_line(exc.cause)}; nothing ran "
            f"({what} {str(exc.row.id)[:8]} is recorded as not started)",
            EXIT_UNAVAILABLE,
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def start_connection_test(session: Session, source: Source) -> ConnectionTest:
    with _starting_work():
        return sources.start_connection_test(session, source)


def start_run(
    session: Session,
    source: Source,
    kind: RunKind,
    *,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> SyncRun:
    with _starting_work():
        sources.refuse_disabled(source)
        if window_start and window_end and window_start >= window_end:
            raise CliError("--from must be before --to")
        return sources.start_run(session, source, kind, RunTrigger.CLI,
                                 (window_start, window_end))


def in_progress_run(session: Session, skipped: SyncRun) -> SyncRun | None:
    """The run of the same source and kind that made ``skipped`` a duplicate, if any: the one
    its skip names (it may have ended by now; its outcome is the answer), else one still going."""
    holder = skipped.details.get("duplicate_of")
    if holder:
        named = session.get(SyncRun, uuid.UUID(str(holder)))
        if named is not None and named.source_id == skipped.source_id:
            return named
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
