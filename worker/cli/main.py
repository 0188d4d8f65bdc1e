"""The operator CLI: ``activity-insights`` (also ``python -m worker.cli``).

Data commands work on the database directly (create rows, commit, enqueue by name with ids
only), the way the API does; launchers `exec` the long-running processes. Expected failures are
one line on stderr and a non-zero exit (see `worker.cli.errors`).
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlmodel import col, select

from worker import migrate
from worker.cli import launch as launchers
from worker.cli import ops
from worker.cli.errors import EXIT_FAILED, CliError, friendly
from worker.cli.identities import identities_app
from worker.cli.insights import insights_app
from worker.cli.report import report as report_command
from worker.cli.watch import render_connection_test, wait_activity, wait_connection_test, wait_run
from worker.db import session_scope
from worker.kit.crypto import decrypt_json
from worker.kit.redis import get_redis
from worker.models import (
    ConnectionTest,
    GrantType,
    RunKind,
    RunStatus,
    Source,
    SourceStatus,
    SyncRun,
    Tenant,
    TestStatus,
    ZoomPlan,
)
from worker.models.base import as_utc
from worker.settings import get_settings, settings_or_exit
from worker.sources import service as sources_service
from worker.tokens.credentials import forget_source_credentials

app = typer.Typer(
    name="activity-insights",
    help="Activity Insights for Zoom: operate the worker, the API and the database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants (customer organisations).", no_args_is_help=True)
key_app = typer.Typer(help="API keys.", no_args_is_help=True)
source_app = typer.Typer(help="Sources: one Zoom app of one tenant.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(key_app, name="key")
app.add_typer(source_app, name="source")
app.command("report")(report_command)
app.add_typer(identities_app, name="identities")
app.add_typer(insights_app, name="insights")


def _console() -> Console:
    # Wide enough for tables when output is captured (tests, pipes into less).
    return Console(width=None if Console().is_terminal else 80, highlight=False)


def _when(value: datetime | None) -> str:
    value = as_utc(value)
    if value is None:
        return "-"
    delta = datetime.now(UTC) - value
    stamp = value.strftime("%Y-%m-%d %H:%M")
    if timedelta(0) <= delta < timedelta(days=1):
        minutes = int(delta.total_seconds() // 60)
        return f"{stamp} ({minutes // 60}h{minutes % 60:02d} ago)" if minutes >= 60 else (
            f"{stamp} ({minutes}m ago)"
        )
    return stamp


# --- db -----------------------------------------------------------------------------------


@db_app.command("upgrade")
@friendly
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    settings = settings_or_exit()
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"database at {migrate.current(settings.database_url)}")


@db_app.command("current")
@friendly
def db_current() -> None:
    """Show the revision the database is at, and whether it is the newest."""
    settings = settings_or_exit()
    current, head = migrate.current(settings.database_url), migrate.head()
    state = "up to date" if current == head else f"behind (head is {head})"
    typer.echo(f"{current or 'empty'}: {state}")


# --- tenants and keys ---------------------------------------------------------------------


@tenant_app.command("create")
@friendly
def tenant_create(name: Annotated[str, typer.Argument(help="Unique tenant name.")]) -> None:
    """Create a tenant; prints its id."""
    settings_or_exit()
    with session_scope() as session:
        tenant = ops.create_tenant(session, name)
    typer.echo(f"tenant {tenant.name} created: {tenant.id}")


@tenant_app.command("list")
@friendly
def tenant_list() -> None:
    """List tenants."""
    settings_or_exit()
    with session_scope() as session:
        for tenant in session.exec(select(Tenant).order_by(col(Tenant.name))):
            typer.echo(f"{tenant.id}  {tenant.name}")


@key_app.command("create")
@friendly
def key_create(
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Tenant name or id (a tenant key).")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin key (creates tenants).")] = False,
    name: Annotated[str, typer.Option("--name", help="What the key is for.")] = "",
) -> None:
    """Create an API key. It is printed once; only its hash is stored."""
    settings_or_exit()
    with session_scope() as session:
        row, plain = ops.create_key(session, tenant, name, admin)
    scope = "admin" if row.is_admin else f"tenant {row.tenant_id}"
    typer.echo(f"key {row.prefix}… for {scope} (id {row.id}); store it now, it is not shown again:",
               err=True)
    typer.echo(plain)


# --- sources ------------------------------------------------------------------------------


class GrantChoice(StrEnum):
    s2s = "s2s"
    account_credentials = "account_credentials"
    refresh_token = "refresh_token"


@source_app.command("add")
@friendly
def source_add(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name or id.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Unique within the tenant.")],
    grant_type: Annotated[
        GrantChoice,
        typer.Option("--grant-type", "-g", help="s2s (Server-to-Server OAuth) or refresh_token."),
    ] = GrantChoice.s2s,
    account_id: Annotated[str, typer.Option(help="Zoom account id (s2s).")] = "",
    client_id: Annotated[str, typer.Option(help="The Zoom app's client id.")] = "",
    # Hidden, and only there to refuse: a secret on the command line is readable by every user
    # of the machine (`ps`) and stays in the shell's history.
    client_secret: Annotated[str | None, typer.Option(hidden=True)] = None,
    refresh_token: Annotated[str | None, typer.Option(hidden=True)] = None,
    plan: Annotated[ZoomPlan, typer.Option(help="The account's Zoom plan (rate limits).")] = (
        ZoomPlan.PRO
    ),
    rate_share: Annotated[
        float | None, typer.Option(help="Share of the account's Zoom limits (0-1].")
    ] = None,
    description: Annotated[str, typer.Option()] = "",
    owner: Annotated[str, typer.Option(help="Who to ask about this source.")] = "",
    aggregation_cron: Annotated[str, typer.Option(help="Empty: daily, spread by source.")] = "",
    activity_cron: Annotated[str, typer.Option(help="Empty: daily, spread by source.")] = "",
    timezone: Annotated[str, typer.Option(help="IANA zone the crons run in.")] = "UTC",
) -> None:
    """Add a source (a Zoom app) with its credentials, stored encrypted.

    The client secret (and a refresh_token app's refresh token) come from AI_SOURCE_CLIENT_SECRET
    (AI_SOURCE_REFRESH_TOKEN) or a hidden prompt, never from the command line."""
    for option, given in (("client_secret", client_secret), ("refresh_token", refresh_token)):
        if given is not None:
            raise CliError(f"--{option.replace('_', '-')}: {_NOT_ON_ARGV}; set "
                           f"{ops.SECRET_ENV[option]} or run in a terminal to be prompted")
    # Before any prompt: a secret typed in only to hear that it cannot be stored is wasted.
    settings_or_exit().require("encryption_key")
    grant = (
        GrantType.REFRESH_TOKEN
        if grant_type == GrantChoice.refresh_token
        else GrantType.ACCOUNT_CREDENTIALS
    )
    secret_values: dict[str, str] = {
        name: _secret_for(name, "") for name in ("client_secret", "refresh_token")
        if name in sources_service.required_credentials(grant)
    }
    spec = ops.NewSource(
        tenant=tenant,
        name=name,
        grant_type=grant,
        credentials={"account_id": account_id, "client_id": client_id, **secret_values},
        plan=plan,
        rate_share=rate_share,
        description=description,
        owner=owner,
        aggregation_cron=aggregation_cron,
        activity_cron=activity_cron,
        timezone=timezone,
    )
    with session_scope() as session:
        source = ops.add_source(session, spec)
    typer.echo(f"source {source.name} added: {source.id}")
    typer.echo(f"next: activity-insights test-connection {source.id} --wait", err=True)


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


@source_app.command("list")
@friendly
def source_list(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """List sources with their status."""
    settings_or_exit()
    with session_scope() as session:
        rows = ops.list_sources(session, tenant)
    if as_json:
        typer.echo(json.dumps([_source_list_json(t, s) for t, s in rows], indent=2))
        return
    # As `status`: the terminal's width (80 when piped, or COLUMNS), never a line beyond it.
    console = Console(highlight=False)
    width = max(40, console.width)
    for line in _source_lines(rows, width):
        console.print(line, no_wrap=True, overflow="ellipsis")


_LIST_NAME_MIN = 16


def _source_lines(rows: list[tuple[Tenant, Source]], width: int) -> list[Text]:
    """A header, then one line per source, each column as wide as its longest value (a name too
    long for its column gets a line of its own above), and for a source that is not active,
    why, shortened at a word boundary. No line is wider than ``width``."""
    table = [(f"{t.name}/{s.name}", str(s.id), _grant_label(s.grant_type), s.status,
              _when(s.last_test_ok_at)) for t, s in rows]
    header = ("tenant/source", "id", "grant", "status", "last test ok")
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    rest = sum(widths[2:]) + len(widths) - 1
    # Full ids when they fit; otherwise the 8 characters `status` shows, which every command
    # accepts as a unique prefix.
    widths[1] = 36 if width - rest - 36 >= _LIST_NAME_MIN else 8
    widths[0] = max(min(widths[0], width - rest - widths[1]), 6)

    def line(cells: tuple[str, ...], status_style: str = "") -> Text:
        text = Text()
        for n, (value, w) in enumerate(zip(cells, widths, strict=True)):
            text.append(" " if n else "")
            text.append(f"{value[:w]:<{w}}", style=status_style if n == 3 else "")
        text.rstrip()
        return text

    out = [line(header)]
    out[0].stylize("bold")
    for cells, (_, s) in zip(table, rows, strict=True):
        if len(cells[0]) > widths[0]:
            out.append(Text(cells[0]))
            cells = ("", *cells[1:])
        out.append(line(cells, _STATUS_STYLE.get(s.status, "")))
        if s.status_message and s.status != SourceStatus.ACTIVE:
            out.append(Text("  " + _shorten(s.status_message, width - 2), style="dim"))
    return out


def _grant_label(grant_type: str) -> str:
    return "s2s" if grant_type == GrantType.ACCOUNT_CREDENTIALS else grant_type


def _source_list_json(t: Tenant, s: Source) -> dict[str, Any]:
    return {"tenant": {"id": str(t.id), "name": t.name}, "id": str(s.id), "name": s.name,
            "grant_type": s.grant_type, "status": s.status, "status_message": s.status_message,
            "last_test_ok_at": _iso(s.last_test_ok_at)}


@source_app.command("show")
@friendly
def source_show(
    source: Annotated[str, typer.Argument(help="Source id, id prefix, name or TENANT/NAME.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Show a source; credentials only as which fields are set."""
    settings_or_exit()
    with session_scope() as session:
        row = ops.resolve_source(session, source)
        tenant = session.get(Tenant, row.tenant_id)
        stored = decrypt_json(row.credentials_ciphertext) if row.credentials_ciphertext else {}
    info = {
        "id": str(row.id),
        "tenant": tenant.name if tenant else str(row.tenant_id),
        "name": row.name,
        "grant_type": row.grant_type,
        "zoom_account_id": row.zoom_account_id,
        "credentials_set": sorted(k for k, v in stored.items() if v),
        "credentials_version": row.credentials_version,
        "credentials_updated_at": _iso(row.credentials_updated_at),
        "status": row.status,
        "status_message": row.status_message,
        "plan": row.plan,
        "rate_share": row.rate_share,
        "aggregation_cron": row.aggregation_cron or "(default: daily, spread)",
        "activity_cron": row.activity_cron or "(default: daily, spread)",
        "timezone": row.timezone,
        "next_aggregation_at": _iso(row.next_aggregation_at),
        "next_activity_at": _iso(row.next_activity_at),
        "last_test_at": _iso(row.last_test_at),
        "last_test_ok_at": _iso(row.last_test_ok_at),
        "insights_ready_at": _iso(row.insights_ready_at),
    }
    del stored
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim")
    table.add_column()
    for key, value in info.items():
        shown = ", ".join(value) if isinstance(value, list) else ("-" if value is None else value)
        table.add_row(key, str(shown))
    # The terminal's width (80 when piped): long values wrap at word boundaries in their column.
    Console(highlight=False).print(table)


def _iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value else None


_NOT_ON_ARGV = ("a secret is never taken from the command line (other users of the machine "
                "can read a process's arguments)")


def _secret_for(name: str, label: str) -> str:
    """A secret from its environment variable, else a hidden prompt in a terminal, else ""."""
    value = os.environ.get(ops.SECRET_ENV[name], "").strip()
    if not value and _stdin_is_tty():
        value = typer.prompt(f"{label}{name.replace('_', ' ')}", hide_input=True).strip()
    return value


def _new_secret(name: str) -> str:
    """A secret to store, from its environment variable or a hidden prompt; never from argv."""
    value = _secret_for(name, "new ")
    if not value:
        raise CliError(f"--{name.replace('_', '-')}: set {ops.SECRET_ENV[name]} or run in a "
                       "terminal to be prompted (the value is never taken from the command line)")
    return value


@source_app.command("update")
@friendly
def source_update(
    source: Annotated[str, typer.Argument(help="Source id, id prefix, name or TENANT/NAME.")],
    grant_type: Annotated[
        GrantChoice | None, typer.Option("--grant-type", "-g", help="Switch the grant type.")
    ] = None,
    account_id: Annotated[str | None, typer.Option(help="New Zoom account id (s2s).")] = None,
    client_id: Annotated[str | None, typer.Option(help="New client id.")] = None,
    client_secret: Annotated[
        bool,
        typer.Option("--client-secret", help="Set a new client secret: from "
                     "AI_SOURCE_CLIENT_SECRET, else prompted for (hidden)."),
    ] = False,
    refresh_token: Annotated[
        bool,
        typer.Option("--refresh-token", help="Set a new refresh token: from "
                     "AI_SOURCE_REFRESH_TOKEN, else prompted for (hidden)."),
    ] = False,
    webhook_secret_token: Annotated[
        bool,
        typer.Option("--webhook-secret-token", help="Set the webhook Secret Token: from "
                     "AI_SOURCE_WEBHOOK_SECRET_TOKEN, else prompted for (hidden)."),
    ] = False,
    aggregation_cron: Annotated[
        str | None, typer.Option(help="Five-field cron; '' for the default (daily, spread).")
    ] = None,
    activity_cron: Annotated[
        str | None, typer.Option(help="Five-field cron; '' for the default (daily, spread).")
    ] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA zone the crons run in.")] = None,
    aggregation: Annotated[
        bool | None, typer.Option("--aggregation/--no-aggregation",
                                  help="Scheduled aggregations on or off.")
    ] = None,
    activity: Annotated[
        bool | None, typer.Option("--activity/--no-activity",
                                  help="Scheduled activity syncs on or off.")
    ] = None,
    plan: Annotated[ZoomPlan | None, typer.Option(help="The account's Zoom plan.")] = None,
    rate_share: Annotated[
        float | None, typer.Option(help="Share of the account's Zoom limits (0-1].")
    ] = None,
    description: Annotated[str | None, typer.Option()] = None,
    owner: Annotated[str | None, typer.Option(help="Who to ask about this source.")] = None,
) -> None:
    """Change a source's credentials, schedules or streams; omitted options keep their value.

    New credentials are merged with the stored ones and bump the credentials version; the
    cached access token is dropped so the next task uses them."""
    settings = settings_or_exit()
    wants_secret = client_secret or refresh_token or webhook_secret_token
    if wants_secret or account_id is not None or client_id is not None or grant_type:
        settings.require("encryption_key")
    credentials: dict[str, str] = {}
    if account_id is not None:
        credentials["account_id"] = account_id
    if client_id is not None:
        credentials["client_id"] = client_id
    for name, wanted in (("client_secret", client_secret), ("refresh_token", refresh_token),
                         ("webhook_secret_token", webhook_secret_token)):
        if wanted:
            credentials[name] = _new_secret(name)
    grant = None
    if grant_type is not None:
        grant = (GrantType.REFRESH_TOKEN if grant_type == GrantChoice.refresh_token
                 else GrantType.ACCOUNT_CREDENTIALS)
    changes = ops.SourceChanges(
        grant_type=grant,
        credentials=credentials,
        fields={
            "aggregation_cron": aggregation_cron, "activity_cron": activity_cron,
            "timezone": timezone, "aggregation_enabled": aggregation,
            "activity_enabled": activity, "plan": plan, "rate_share": rate_share,
            "description": description, "owner": owner,
        },
    )
    with session_scope() as session:
        row = ops.resolve_source(session, source)
        changed = ops.update_source(session, row, changes)
        stored = sources_service.stored_credentials(row)
        if webhook_secret_token and "webhook_secret_token" not in stored:
            raise CliError("this version does not store a webhook Secret Token")
        del stored
        name, source_id, version = row.name, row.id, row.credentials_version
    del credentials
    if not changed:
        typer.echo(f"source {name}: nothing to change")
        return
    if "credentials" in changed:
        forget_source_credentials(get_redis(), str(source_id))
        changed[changed.index("credentials")] = f"credentials (version {version})"
    typer.echo(f"source {name} updated: {', '.join(changed)}")
    if webhook_secret_token:
        typer.echo("Zoom's event notification endpoint URL: "
                   f"<API base URL>/v1/webhooks/zoom/{source_id}")
    if any(c.startswith("credentials") for c in changed):
        typer.echo(f"next: activity-insights test-connection {source_id} --wait", err=True)


@source_app.command("enable")
@friendly
def source_enable(
    source: Annotated[str, typer.Argument(help="Source id, id prefix, name or TENANT/NAME.")],
) -> None:
    """Enable a disabled source; schedules resume after its next successful connection test."""
    settings_or_exit()
    with session_scope() as session:
        row = ops.resolve_source(session, source)
        enabled = ops.enable_source(session, row)
        name, source_id = row.name, row.id
    if not enabled:
        typer.echo(f"source {name} is not disabled: nothing to do")
        return
    typer.echo(f"source {name} enabled")
    typer.echo(f"next: activity-insights test-connection {source_id} --wait", err=True)


@source_app.command("disable")
@friendly
def source_disable(
    source: Annotated[str, typer.Argument(help="Source id, id prefix, name or TENANT/NAME.")],
) -> None:
    """Disable a source: no scheduled or manual runs until it is enabled again."""
    settings_or_exit()
    with session_scope() as session:
        row = ops.disable_source(session, ops.resolve_source(session, source))
    typer.echo(f"source {row.name} disabled")


# --- work ---------------------------------------------------------------------------------


@app.command("test-connection")
@friendly
def test_connection(
    source: Annotated[str, typer.Argument(help="Source id, id prefix, name or TENANT/NAME.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the result.")] = False,  # noqa: PT028 - a CLI command, not a pytest test
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 120.0,  # noqa: PT028 - a CLI command, not a pytest test
) -> None:
    """Queue a connection test; with --wait, show the result and what to fix."""
    settings_or_exit()
    with session_scope() as session:
        row = ops.resolve_source(session, source)
        test = ops.start_connection_test(session, row)
    if not wait:
        typer.echo(f"connection test {test.id} queued")
        return
    console = _console()
    result = wait_connection_test(test.id, console, timeout)
    with session_scope() as session:
        fresh = ops.resolve_source(session, str(row.id))
    render_connection_test(result, fresh, console)
    if result.status != TestStatus.SUCCEEDED:
        raise typer.Exit(EXIT_FAILED)


@app.command("aggregate")
@friendly
def aggregate(
    source: Annotated[str, typer.Argument(help="Source id, id prefix, name or TENANT/NAME.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the run.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 1800.0,
) -> None:
    """Queue an aggregation (users, groups, roles and memberships)."""
    _start_and_follow(source, RunKind.AGGREGATION, wait, timeout)


@app.command("correlate")
@friendly
def correlate(
    source: Annotated[str, typer.Argument(help="Source id, id prefix, name or TENANT/NAME.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the run.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 600.0,
) -> None:
    """Queue a correlation of Zoom accounts to the tenant's identities."""
    _start_and_follow(source, RunKind.CORRELATION, wait, timeout)


def _start_and_follow(source: str, kind: RunKind, wait: bool, timeout: float) -> None:
    settings_or_exit()
    with session_scope() as session:
        run = ops.start_run(session, ops.resolve_source(session, source), kind)
    if not wait:
        typer.echo(f"{kind} run {run.id} queued")
        return
    console = _console()
    final = wait_run(run.id, console, timeout)
    if final.status == RunStatus.SKIPPED:
        # Another run of this kind was already working on the source (e.g. the one a first
        # connection test starts): its result is the one the operator is waiting for.
        with session_scope() as session:
            other = ops.in_progress_run(session, final)
        if other is not None:
            console.print(f"{kind} already running: following {other.id}")
            final = wait_run(other.id, console, timeout)
    _finish(final.status, final.error_message)


def _finish(status: str, error: str | None) -> None:
    if status == RunStatus.SUCCEEDED:
        return
    if status == RunStatus.DEFERRED:
        typer.echo(f"deferred: {error or 'Zoom rate cap reached'}; it resumes on its own", err=True)
        return
    raise CliError(f"run {status}: {error or 'no message'}", EXIT_FAILED)


def _parse_day(value: str | None, option: str, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        if "T" in value or " " in value.strip():
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        day = date.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option}: {value!r} is not a date (YYYY-MM-DD)") from None
    # --to is inclusive of its day for a human; run windows are half-open.
    return datetime.combine(day + timedelta(days=1) if end else day, time(), tzinfo=UTC)


@app.command("sync-activity")
@friendly
def sync_activity(
    source: Annotated[str, typer.Argument(help="Source id, id prefix, name or TENANT/NAME.")],
    from_: Annotated[
        str | None, typer.Option("--from", help="Backfill from this day (YYYY-MM-DD, UTC).")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Up to this day, inclusive.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Show progress bars.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 3600.0,
) -> None:
    """Queue an activity sync: incremental from the watermark, or the --from/--to window."""
    settings_or_exit()
    start = _parse_day(from_, "--from")
    end = _parse_day(to, "--to", end=True)
    if end is not None and start is None:
        raise CliError("--to needs --from")
    if start is not None and end is None:
        end = datetime.now(UTC)
    with session_scope() as session:
        run = ops.start_run(
            session, ops.resolve_source(session, source), RunKind.ACTIVITY,
            window_start=start, window_end=end,
        )
    if not wait:
        typer.echo(f"activity sync {run.id} queued")
        return
    console = _console()
    plan, chunks = wait_activity(run.id, console, timeout)
    bad = [c for c in chunks if c.status not in (RunStatus.SUCCEEDED, RunStatus.DEFERRED)]
    records = sum(c.seen for c in chunks)
    console.print(f"{len(chunks)} chunks, {records} records read, {len(bad)} not succeeded")
    if bad:
        first = bad[0]
        raise CliError(
            f"{len(bad)} chunk(s) {first.status}: {first.error_message or 'no message'}",
            EXIT_FAILED,
        )
    _finish(plan.status, plan.error_message)


# --- status -------------------------------------------------------------------------------


@app.command("status")
@friendly
def status(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Every source: its state, last test, last runs, next runs and failures."""
    settings_or_exit()
    with session_scope() as session:
        rows = ops.status_rows(session, tenant)
        totals = {
            (row.source.id, kind): ops.run_totals(session, run)
            for row in rows for kind, run in row.last_runs.items() if run is not None
        }
    if as_json:
        typer.echo(json.dumps([_status_json(row, totals) for row in rows], indent=2))
        return
    if not rows:
        typer.echo("no sources yet: `activity-insights source add --help`")
        return
    # Not `_console()`: this layout is made to read in the terminal's width (80 when piped, or
    # COLUMNS), one block per source rather than a table too wide to read.
    console = Console(highlight=False)
    width = max(40, console.width)
    for number, row in enumerate(rows):
        if number:
            console.print()
        _print_status_block(console, row, totals, width)


_LABEL = 13  # "correlation" and two spaces


def _shorten(text: str, width: int) -> str:
    """One line of at most ``width`` characters, cut at a word boundary with an ellipsis."""
    return textwrap.shorten(" ".join(text.split()), width=max(width, 10), placeholder=" …")


def _print_status_block(
    console: Console, row: ops.SourceStatusRow, totals: dict[Any, dict[str, int]], width: int
) -> None:
    s = row.source
    value_width = width - _LABEL
    console.print(Text(f"{row.tenant.name}/{s.name}", style="bold"), overflow="ellipsis",
                  no_wrap=True)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", width=_LABEL - 2, no_wrap=True)
    grid.add_column(width=value_width, overflow="fold")
    state = Text(s.status, style=_STATUS_STYLE.get(s.status, ""))
    state.append(f"  id {str(s.id)[:8]}  {_grant_label(s.grant_type)}", style="dim")
    grid.add_row("state", state)
    if s.status_message:
        grid.add_row("", _shorten(s.status_message, value_width))
    grid.add_row("last test", _test_cell(row.last_test, value_width))
    for kind, run in row.last_runs.items():
        grid.add_row(kind, _run_cell(run, totals.get((s.id, kind)), value_width))
    grid.add_row("insights", f"ready {_when(s.insights_ready_at)}")
    grid.add_row("next", Text(
        f"agg {_when(s.next_aggregation_at)}\nact {_when(s.next_activity_at)}"))
    failures = f"{row.failures_24h} in 24h"
    if row.last_failure is not None:
        failures += "; last: " + (row.last_failure.error_message or row.last_failure.status)
    grid.add_row("failures", _shorten(failures, value_width))
    console.print(grid)


_STATUS_STYLE = {"active": "green", "failing": "red", "reauthorize": "red", "disabled": "dim",
                 "succeeded": "green", "failed": "red", "retryable": "yellow",
                 "deferred": "yellow", "not started": "yellow", "ok": "green"}


def _test_cell(test: ConnectionTest | None, width: int) -> Text:
    if test is None:
        return Text("never")
    state = "not started" if sources_service.never_started(test) else (
        "ok" if test.status == TestStatus.SUCCEEDED else test.status)
    cell = Text(state, style=_STATUS_STYLE.get(state, ""))
    cell.append(f" {_when(test.finished_at or test.created_at)}")
    if test.status == TestStatus.FAILED and test.message:
        cell.append("\n" + _shorten(test.message, width))
    return cell


def _run_cell(run: SyncRun | None, totals: dict[str, int] | None, width: int) -> Text:
    if run is None:
        return Text("never")
    cell = Text(run.status, style=_STATUS_STYLE.get(run.status, ""))
    cell.append(f" {_when(run.finished_at or run.created_at)}")
    if totals:
        cell.append(f"\nseen {totals['seen']} new {totals['inserted']} upd {totals['updated']} "
                    f"del {totals['deleted']}")
    if run.status in (RunStatus.FAILED, RunStatus.RETRYABLE) and run.error_message:
        cell.append("\n" + _shorten(run.error_message, width))
    return cell


def _status_json(row: ops.SourceStatusRow, totals: dict[Any, dict[str, int]]) -> dict[str, Any]:
    s, test = row.source, row.last_test
    return {
        "tenant": {"id": str(row.tenant.id), "name": row.tenant.name},
        "source": {
            "id": str(s.id), "name": s.name, "grant_type": s.grant_type, "status": s.status,
            "status_message": s.status_message, "last_test_ok_at": _iso(s.last_test_ok_at),
            "next_aggregation_at": _iso(s.next_aggregation_at),
            "next_activity_at": _iso(s.next_activity_at),
            "insights_ready_at": _iso(s.insights_ready_at),
        },
        "last_test": None if test is None else {
            "id": str(test.id), "status": test.status,
            "started": not sources_service.never_started(test),
            "created_at": _iso(test.created_at), "finished_at": _iso(test.finished_at),
            "zoom_error_code": test.zoom_error_code, "message": test.message,
        },
        "last_runs": {
            str(kind): None if run is None else {
                "id": str(run.id), "status": run.status, "trigger": run.trigger,
                "created_at": _iso(run.created_at), "finished_at": _iso(run.finished_at),
                "error_code": run.error_code, "error_message": run.error_message,
                **totals.get((s.id, kind), {}),
            }
            for kind, run in row.last_runs.items()
        },
        "failures_24h": row.failures_24h,
        "last_failure": None if row.last_failure is None else {
            "id": str(row.last_failure.id), "kind": row.last_failure.kind,
            "status": row.last_failure.status, "error_message": row.last_failure.error_message,
            "created_at": _iso(row.last_failure.created_at),
        },
    }


# --- launchers ----------------------------------------------------------------------------


@app.command("worker")
@friendly
def worker(
    queues: Annotated[
        str,
        typer.Option("--queues", "-Q", help="Comma-separated: " + ",".join(launchers.ALL_QUEUES)),
    ] = ",".join(launchers.ALL_QUEUES),
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", help="Processes (default: 2 per CPU, at most 8)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Node name (default from the queues).")] = None,
    loglevel: Annotated[str | None, typer.Option(help="Default AI_LOG_LEVEL.")] = None,
) -> None:
    """Run a Celery worker on some or all queues."""
    settings = settings_or_exit()
    settings.require("encryption_key")
    launchers.exec_launch(
        launchers.worker_command(settings, launchers.parse_queues(queues), concurrency, name,
                                 loglevel)
    )


@app.command("beat")
@friendly
def beat(
    schedule_file: Annotated[
        str | None, typer.Option(help="Beat's state file (schedules themselves live in the db).")
    ] = None,
    loglevel: Annotated[str | None, typer.Option(help="Default AI_LOG_LEVEL.")] = None,
) -> None:
    """Run beat: exactly one per deployment (a second one is harmless but useless)."""
    settings = settings_or_exit()
    launchers.exec_launch(launchers.beat_command(settings, schedule_file, loglevel))


@app.command("api")
@friendly
def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Uvicorn worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Reload on code changes (development).")] = False,
) -> None:
    """Run the HTTP API (uvicorn); OpenAPI docs at /docs."""
    settings = settings_or_exit()
    settings.require("encryption_key", "admin_api_key")
    launchers.exec_launch(launchers.api_command(settings, host, port, workers, reload))


@app.command("flower")
@friendly
def flower(
    port: Annotated[int, typer.Option(help="Port.")] = 5555,
    host: Annotated[str | None, typer.Option(help="Address (default 0.0.0.0; --local: 127.0.0.1).")]
    = None,
    local: Annotated[
        bool, typer.Option("--local", help="Allow running without basic auth, on loopback only.")
    ] = False,
    persistent_db: Annotated[
        str | None, typer.Option(help="Keep Flower's task history in this file across restarts.")
    ] = None,
    url_prefix: Annotated[str | None, typer.Option(help="When served under a path.")] = None,
) -> None:
    """Run Flower with basic auth from AI_FLOWER_USER / AI_FLOWER_PASSWORD."""
    settings = settings_or_exit()
    launchers.exec_launch(
        launchers.flower_command(
            settings, host=host, port=port, local=local, persistent_db=persistent_db,
            url_prefix=url_prefix,
        )
    )


def _settings_for_tests() -> None:
    """Tests change the environment between invocations; drop the cached settings."""
    get_settings.cache_clear()


if __name__ == "__main__":
    app()
