"""`activity-insights insights idle|account`: the API's insight queries (`worker.insights`) for
an operator at a terminal, or as JSON for a script."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session, col, select

from worker import insights
from worker.cli import ops
from worker.cli.errors import CliError, friendly
from worker.db import session_scope
from worker.models import Source, Tenant, ZoomUser, utcnow
from worker.models.base import as_utc
from worker.reports.activity import WINDOW_DAYS
from worker.settings import settings_or_exit

insights_app = typer.Typer(help="Activity Insights: idle accounts, one account's figures.",
                           no_args_is_help=True)


def _iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value else None


def _day(value: datetime | None) -> str:
    value = as_utc(value)
    return value.strftime("%Y-%m-%d") if value else "never"


@insights_app.command("idle")
@friendly
def idle(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name or id.")],
    days: Annotated[int, typer.Option(help="No activity in this many days (1-3650).")] = 90,
    source: Annotated[str | None, typer.Option("--source", "-s", help="Only this source.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Access-review candidates: Zoom accounts (not deleted) with no activity in N days."""
    _check_days(days, 3650)
    settings_or_exit()
    with session_scope() as session:
        row = ops.resolve_tenant(session, tenant)
        source_id = ops.resolve_source(session, source, row.name).id if source else None
        cutoff = utcnow() - timedelta(days=days)
        users = list(session.exec(insights.inactive_accounts_query(row.id, cutoff, source_id)
                                  .order_by(col(ZoomUser.id))))
        latest = insights.last_activity(
            session, row.id, sorted({insights.account_key(u) for u in users if u.email}))
        names = _source_names(session, row)
        items: list[dict[str, Any]] = [{
            "account_id": u.id, "source": names.get(u.source_id, str(u.source_id)),
            "source_id": str(u.source_id), "zoom_id": u.zoom_id, "email": u.email,
            "status": u.status,
            "last_activity_at": _iso(latest.get(insights.account_key(u))) if u.email else None,
            "zoom_last_login_at": _iso(u.last_login_time),
            "zoom_created_at": _iso(u.zoom_created_at),
        } for u in users]
    if as_json:
        typer.echo(json.dumps({"tenant": row.name, "days": days, "accounts": items}, indent=2))
        return
    if not items:
        typer.echo(f"tenant {row.name}: no account without activity in {days} days")
        return
    table = Table("id", "email", "source", "status", "last activity", "zoom login", box=None)
    for item in items:
        table.add_row(str(item["account_id"]), item["email"] or item["zoom_id"], item["source"],
                      item["status"], _day(_parse(item["last_activity_at"])),
                      _day(_parse(item["zoom_last_login_at"])))
    console = Console(highlight=False)
    console.print(table)
    console.print(f"{len(items)} account(s) of tenant {row.name} without activity in {days} "
                  "days; details: activity-insights insights account ID")


def _check_days(days: int, most: int) -> None:
    # The API's bounds, as a one-line error rather than Click's usage block.
    if not 1 <= days <= most:
        raise CliError(f"--days must be between 1 and {most}; got {days}")


def _parse(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _source_names(session: Session, tenant: Tenant) -> dict[Any, str]:
    return {s.id: s.name for s in session.exec(select(Source).where(
        Source.tenant_id == tenant.id))}


def _resolve_account(session: Session, ref: str, tenant_ref: str | None) -> ZoomUser:
    """An account by its id (as `insights idle` and the API show it) or its email."""
    tenant = ops.resolve_tenant(session, tenant_ref) if tenant_ref else None
    if ref.strip().isdigit():
        user = session.get(ZoomUser, int(ref))
        if user is not None and (tenant is None or user.tenant_id == tenant.id):
            return user
        raise CliError(f"no account {ref} (see `activity-insights insights idle -t TENANT`)")
    query = select(ZoomUser).where(col(ZoomUser.email).ilike(ref.strip()))
    if tenant is not None:
        query = query.where(ZoomUser.tenant_id == tenant.id)
    matches = list(session.exec(query.order_by(col(ZoomUser.id))))
    live = [u for u in matches if u.deleted_at is None] or matches
    if not live:
        raise CliError(f"no account with email {ref!r}")
    if len(live) > 1:
        ids = ", ".join(str(u.id) for u in live[:10])
        raise CliError(f"{len(live)} accounts have the email {ref!r} (ids {ids}): give the id "
                       "or --tenant")
    return live[0]


@insights_app.command("account")
@friendly
def account(
    account_ref: Annotated[str, typer.Argument(metavar="ACCOUNT",
                                               help="Account id or email address.")],
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant name or id.")]
    = None,
    window_days: Annotated[int, typer.Option("--days", help="Window for the counts (1-180 days).")]
    = WINDOW_DAYS,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """One Zoom account's last activity, days active and sign-ins against the tenant average."""
    _check_days(window_days, 180)
    settings_or_exit()
    with session_scope() as session:
        user = _resolve_account(session, account_ref, tenant)
        figures = insights.figures(session, user.tenant_id, [user], utcnow(), window_days)
        owner = session.get(Tenant, user.tenant_id)
        source = session.get(Source, user.source_id)
    info: dict[str, Any] = {
        "account_id": user.id, "tenant": owner.name if owner else str(user.tenant_id),
        "source": source.name if source else str(user.source_id), "zoom_id": user.zoom_id,
        "email": user.email, "status": user.status, "deleted_at": _iso(user.deleted_at),
        **{k: _iso(v) if isinstance(v, datetime) else v for k, v in asdict(figures).items()},
    }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for key, value in info.items():
        grid.add_row(key, "-" if value is None else str(value))
    Console(highlight=False).print(grid)
