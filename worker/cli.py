"""The operator CLI: ``activity-insights``."""

from __future__ import annotations

import typer

from worker.settings import settings_or_exit

app = typer.Typer(
    name="activity-insights",
    help="Activity Insights for Zoom: operate the worker, the API and the database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    settings = settings_or_exit()
    from worker import migrate

    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"database at {migrate.current(settings.database_url)}")


@db_app.command("current")
def db_current() -> None:
    """Show the revision the database is at, and whether it is the newest."""
    settings = settings_or_exit()
    from worker import migrate

    current, head = migrate.current(settings.database_url), migrate.head()
    state = "up to date" if current == head else f"behind (head is {head})"
    typer.echo(f"{current or 'empty'}: {state}")


if __name__ == "__main__":
    app()
