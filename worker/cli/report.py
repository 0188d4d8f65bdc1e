"""`activity-insights report`: write a tenant's (or one source's) access review to a file."""

from __future__ import annotations

import os
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlmodel import Session

from worker.cli import ops
from worker.cli.errors import CliError, friendly
from worker.settings import settings_or_exit


class ReportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    HTML = "html"


@friendly
def report(
    target: Annotated[str, typer.Argument(
        help="Tenant (name or id) or source (id, id prefix, name or TENANT/NAME).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    format: Annotated[ReportFormat, typer.Option("--format", "-f", help="csv, json or html.")]
    = ReportFormat.CSV,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Idle threshold (days).")] = 30,
) -> None:
    """Write the access review (every account, its evidence and findings) as CSV, JSON or the
    HTML report page, with a progress bar; the file appears whole or not at all."""
    settings_or_exit()
    from worker.db import session_scope
    from worker.models import utcnow
    from worker.reports.export import write_report
    from worker.reports.findings import ReviewParams, build_review, count_accounts

    with session_scope() as session:
        tenant_id, source_id, label = _resolve(session, target)
        params = ReviewParams(tenant_id=tenant_id, now=utcnow(), days=days, source_id=source_id)
        total = count_accounts(session, build_review(session, params))
        partial = output.with_name(f".{output.name}.partial")
        console = Console(stderr=True, highlight=False)
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=console, transient=False) as progress:
                bar = progress.add_task(f"access review of {label}", total=total)
                with partial.open("w", encoding="utf-8", newline="") as handle:
                    summary = write_report(
                        session, params, format.value, handle,
                        lambda done: progress.update(bar, completed=done),
                    )
            os.replace(partial, output)
        except OSError as exc:
            raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None
        finally:
            partial.unlink(missing_ok=True)
    counts = ", ".join(f"{n} {name}" for name, n in summary.findings.items())
    typer.echo(f"{output}: {summary.accounts} accounts ({counts})")


def _resolve(session: Session, target: str) -> tuple[uuid.UUID, uuid.UUID | None, str]:
    """A tenant's name or id first (the whole tenant), else a source (that source only)."""
    try:
        tenant = ops.resolve_tenant(session, target)
        return tenant.id, None, f"tenant {tenant.name}"
    except CliError:
        source = ops.resolve_source(session, target)
        return source.tenant_id, source.id, f"source {source.name}"
