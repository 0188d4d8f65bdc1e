"""`insights idle|account` through typer's runner on the suite's Postgres, with the directory and
activity the API's insight tests use (tests/api/seed.py): the same answers as the API's."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from tests.api.seed import NOW, Seeded, seed_directory_and_activity
from tests.cli.test_commands import Cli, _one_line_error, _s2s_source, _tenant


def _seeded(cli: Cli, tenant: str = "acme") -> Seeded:
    tenant_id = _tenant(cli, tenant)
    source_id = _s2s_source(cli, tenant)
    return seed_directory_and_activity(str(tenant_id), str(source_id))


def _idle(cli: Cli, *args: str) -> list[str]:
    result = cli("insights", "idle", "-t", "acme", "--json", *args)
    assert result.exit_code == 0, result.output
    return [a["zoom_id"] for a in json.loads(result.stdout)["accounts"]]


def test_idle_lists_the_same_candidates_as_the_api(cli: Cli) -> None:
    _seeded(cli)
    other = _seeded(cli, "globex")  # another tenant's accounts never show
    assert other.users
    assert _idle(cli) == ["u-bob", "u-carol"]  # 90 days by default; deleted dave is not there
    assert _idle(cli, "--days", "180") == ["u-carol"]
    assert _idle(cli, "--days", "1") == ["u-alice", "u-bob", "u-carol"]
    assert _idle(cli, "--days", "1", "--source", "zoom") == ["u-alice", "u-bob", "u-carol"]
    body = json.loads(cli("insights", "idle", "-t", "acme", "--json").stdout)
    bob = body["accounts"][0]
    # His last activity is the meeting he hosted 120 days ago (as the API says).
    assert datetime.fromisoformat(bob["last_activity_at"]) == NOW - timedelta(days=120)
    assert bob["source"] == "zoom"
    assert body["days"] == 90

    table = cli("insights", "idle", "-t", "acme", env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    assert "bob@acme.example" in table.stdout
    assert "alice" not in table.stdout.lower()
    assert "2 account(s) of tenant acme without activity in 90 days" in table.stdout
    _one_line_error(cli("insights", "idle", "-t", "acme", "--days", "0"), 2, "between 1 and 3650")
    _one_line_error(cli("insights", "account", "1", "--days", "181"), 2, "between 1 and 180")


def test_account_shows_the_figures_the_api_computes(cli: Cli) -> None:
    seeded = _seeded(cli)
    alice = seeded.users["u-alice"]
    result = cli("insights", "account", str(alice), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["tenant"], info["source"], info["zoom_id"]) == ("acme", "zoom", "u-alice")
    assert info["window_days"] == 90
    assert info["sign_ins"] == 4
    assert datetime.fromisoformat(info["last_activity_at"]) == NOW - timedelta(days=1)
    # Four sign-ins in the window over three live accounts (alice, bob, carol).
    assert info["tenant_average_sign_ins"] == pytest.approx(4 / 3, abs=1e-3)
    assert (info["meetings_hosted"], info["meetings_attended"], info["meeting_minutes"]) == (
        1, 1, 35)
    by_email = json.loads(cli("insights", "account", "ALICE@acme.example", "--json").stdout)
    assert by_email["account_id"] == alice
    wide = json.loads(cli("insights", "account", str(seeded.users["u-bob"]), "--days", "180",
                          "--json").stdout)
    assert wide["sign_ins"] == 1
    shown = cli("insights", "account", str(alice))
    assert shown.exit_code == 0
    assert "sign_ins" in shown.stdout
    assert "4" in shown.stdout


def test_unknown_and_ambiguous_accounts_are_one_line_errors(cli: Cli) -> None:
    _seeded(cli)
    _seeded(cli, "globex")
    _one_line_error(cli("insights", "account", "999999"), 2, "no account 999999")
    _one_line_error(cli("insights", "account", "nobody@example.com"), 2, "no account")
    _one_line_error(cli("insights", "account", "bob@acme.example"), 2, "2 accounts", "--tenant")
    result = cli("insights", "account", "bob@acme.example", "-t", "globex", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["tenant"] == "globex"
    _one_line_error(cli("insights", "idle", "-t", "nobody"), 2, "no tenant")
