"""`identities import` through typer's runner on the suite's Postgres: the API's parser and
upsert, more rows than one API request takes, and bad files that write nothing."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import func
from sqlmodel import select

from tests.cli.test_commands import Cli, _one_line_error, _tenant
from worker.db import session_scope
from worker.identities import MAX_ROWS
from worker.models import Identity


def _count(tenant_id: object) -> int:
    with session_scope() as session:
        return int(session.exec(select(func.count()).select_from(Identity)
                                .where(Identity.tenant_id == tenant_id)).one())


def test_import_upserts_by_external_id_with_a_summary(cli: Cli, tmp_path: Path) -> None:
    acme, globex = _tenant(cli, "acme"), _tenant(cli, "globex")
    rows = MAX_ROWS + 500  # more than the API takes in one request: the CLI is not one request
    csv = tmp_path / "people.csv"
    csv.write_text("external_id,email,display_name,department\n"
                   + "".join(f"e{n},P{n}@Example.com,Person {n},eng\n" for n in range(rows))
                   + "e1,renamed@example.com,Renamed,\n", encoding="utf-8")
    result = cli("identities", "import", "-t", "acme", str(csv))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"tenant acme: {rows + 1} rows read, {rows} inserted, 0 updated "
        "(1 repeated an external_id: the last one won)"
    )
    assert _count(acme) == rows
    assert _count(globex) == 0
    with session_scope() as session:
        one = session.exec(select(Identity).where(Identity.external_id == "e1")).one()
        two = session.exec(select(Identity).where(Identity.external_id == "e2")).one()
    assert (one.email, one.display_name, one.attributes) == ("renamed@example.com", "Renamed", {})
    assert (two.email_normalized, two.attributes) == ("p2@example.com", {"department": "eng"})

    again = tmp_path / "again.csv"
    again.write_text("external_id,email\ne2,new@example.com\ne-new,x@example.com\n")
    result = cli("identities", "import", "--tenant", "acme", str(again))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "tenant acme: 2 rows read, 1 inserted, 1 updated"
    assert _count(acme) == rows + 1
    # "-" reads the file from stdin (`docker compose exec -T api ... - < people.csv`).
    piped = cli("identities", "import", "-t", "acme", "-", input="external_id\npiped\n")
    assert piped.stdout.strip() == "tenant acme: 1 rows read, 1 inserted, 0 updated"


def test_a_bad_file_is_one_line_naming_the_row_and_writes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    acme = _tenant(cli)
    bad = tmp_path / "bad.csv"
    bad.write_text("external_id,email\ne1,a@example.com\n,b@example.com\n")
    _one_line_error(cli("identities", "import", "-t", "acme", str(bad)), 2,
                    "row 3: external_id", "nothing was imported")
    no_id = tmp_path / "no_id.csv"
    no_id.write_text("email\na@example.com\n")
    _one_line_error(cli("identities", "import", "-t", "acme", str(no_id)), 2, "external_id column")
    binary = tmp_path / "latin1.csv"
    binary.write_bytes("external_id\n\xe9t\xe9\n".encode("latin-1"))
    _one_line_error(cli("identities", "import", "-t", "acme", str(binary)), 2, "UTF-8")
    _one_line_error(cli("identities", "import", "-t", "acme", str(tmp_path / "missing.csv")), 2,
                    "cannot read it")
    good = tmp_path / "good.csv"
    good.write_text("external_id\ne1\n")
    _one_line_error(cli("identities", "import", "-t", "nobody", str(good)), 2, "no tenant")
    assert _count(acme) == 0


def test_import_draws_a_progress_bar_on_a_terminal(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.cli import identities as command

    _tenant(cli)
    drawn = io.StringIO()
    monkeypatch.setattr(command, "Console", lambda **_: Console(
        file=drawn, force_terminal=True, width=80))
    csv = tmp_path / "people.csv"
    csv.write_text("external_id\n" + "".join(f"e{n}\n" for n in range(2500)))
    result = cli("identities", "import", "-t", "acme", str(csv))
    assert result.exit_code == 0, result.output
    screen = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", drawn.getvalue())
    # Intermediate steps depend on rich's refresh timing; the bar and its full count do not.
    assert "identities" in screen, screen
    assert "━" in screen, screen
    assert "2500/2500" in screen, screen
