"""`activity-insights identities import`: the tenant's identities from a CSV file, parsed and
upserted by the same code as the API's ``POST /v1/identities/csv`` (`worker.identities`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from worker import identities
from worker.cli import ops
from worker.cli.errors import CliError, friendly
from worker.db import session_scope
from worker.settings import settings_or_exit

identities_app = typer.Typer(help="Identities (the tenant's people) for correlation.",
                             no_args_is_help=True)


@identities_app.command("import")
@friendly
def identities_import(
    file: Annotated[Path, typer.Argument(help="CSV: external_id,email,display_name,... "
                                         "(other columns become attributes); - for stdin.")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant name or id.")],
) -> None:
    """Insert or update identities by external_id; a bad row stops the import before anything
    is written."""
    settings_or_exit()
    try:
        data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        raise CliError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    try:
        # Not one HTTP request: no per-request row cap, the file is imported in one transaction.
        rows = identities.parse_csv(data, max_rows=None)
    except identities.IdentitiesRejected as exc:
        raise CliError(f"{file}: {exc}; nothing was imported") from None
    console = Console(stderr=True, highlight=False)
    with session_scope() as session:
        row = ops.resolve_tenant(session, tenant)
        tenant_name, tenant_id = row.name, row.id
        distinct = len({r.external_id for r in rows})
        with Progress(TextColumn("identities"), BarColumn(), MofNCompleteColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("upsert", total=distinct)
            result = identities.upsert_identities(
                session, tenant_id, rows, progress=lambda n: progress.advance(task, n)
            )
    repeated = result.received - (result.inserted + result.updated)
    summary = (f"tenant {tenant_name}: {result.received} rows read, {result.inserted} inserted, "
               f"{result.updated} updated")
    if repeated:
        summary += f" ({repeated} repeated an external_id: the last one won)"
    typer.echo(summary)
    if result.inserted or result.updated:
        typer.echo("next: activity-insights correlate SOURCE --wait", err=True)
