"""`source update`, `source enable`, id prefixes and what the CLI says when the broker is down,
through typer's runner (and one real subprocess) on the suite's Postgres and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from sqlmodel import select

from tests.cli.test_commands import SECRET, Cli, _one_line_error, _s2s_source, _tenant
from worker.cli import main as cli_main
from worker.db import session_scope
from worker.kit.crypto import decrypt_json
from worker.kit.net import free_port
from worker.models import ConnectionTest, Source, SourceStatus, utcnow
from worker.models import TestStatus as TS
from worker.tokens.credentials import token_key


def _source(source_id: uuid.UUID) -> Source:
    with session_scope() as session:
        row = session.get(Source, source_id)
        assert row is not None
        session.expunge(row)
        return row


def test_update_rotates_the_secret_from_the_environment_and_drops_the_cached_token(
    cli: Cli, redis_client: Any
) -> None:
    _tenant(cli)
    source_id = _s2s_source(cli)
    redis_client.set(token_key(str(source_id)), "cached-token")
    new = "n3w-" + uuid.uuid4().hex
    result = cli("source", "update", "zoom", "--client-id", "cid-2", "--client-secret",
                 env={"AI_SOURCE_CLIENT_SECRET": new})
    assert result.exit_code == 0, result.output
    assert "credentials (version 2)" in result.stdout
    assert new not in result.output
    row = _source(source_id)
    assert decrypt_json(row.credentials_ciphertext) == {
        "account_id": "acc-1", "client_id": "cid-2", "client_secret": new,
    }
    assert row.credentials_version == 2
    assert redis_client.get(token_key(str(source_id))) is None


def test_update_prompts_for_a_secret_and_refuses_one_it_cannot_read(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tenant(cli)
    source_id = _s2s_source(cli)
    # No terminal and no environment variable: a clear refusal, nothing changes.
    _one_line_error(cli("source", "update", "zoom", "--client-secret"), 2,
                    "AI_SOURCE_CLIENT_SECRET", "never taken from the command line")
    assert _source(source_id).credentials_version == 1
    monkeypatch.setattr(cli_main, "_stdin_is_tty", lambda: True)
    result = cli("source", "update", "zoom", "--client-secret", input="typed-secret\n")
    assert result.exit_code == 0, result.output
    assert "typed-secret" not in result.output
    assert decrypt_json(_source(source_id).credentials_ciphertext)["client_secret"] == (
        "typed-secret"
    )


def test_update_switches_the_grant_type_and_names_the_missing_flag(cli: Cli) -> None:
    _tenant(cli)
    source_id = _s2s_source(cli)
    _one_line_error(cli("source", "update", "zoom", "-g", "refresh_token"), 2, "--refresh-token")
    result = cli("source", "update", "zoom", "-g", "refresh_token", "--refresh-token",
                 env={"AI_SOURCE_REFRESH_TOKEN": "rt-" + SECRET})
    assert result.exit_code == 0, result.output
    row = _source(source_id)
    assert row.grant_type == "refresh_token"
    assert row.zoom_account_id is None
    # The S2S account id is dropped with the grant type that needed it.
    assert decrypt_json(row.credentials_ciphertext) == {
        "client_id": "cid-1", "client_secret": SECRET, "refresh_token": "rt-" + SECRET,
    }


def test_update_sets_schedules_zone_and_streams_and_reschedules(cli: Cli) -> None:
    _tenant(cli)
    source_id = _s2s_source(cli)
    with session_scope() as session:
        row = session.get_one(Source, source_id)
        row.status = SourceStatus.ACTIVE  # scheduled only when active
        session.add(row)
    result = cli("source", "update", "zoom", "--aggregation-cron", "15 2 * * *",
                 "--timezone", "Europe/Paris", "--no-activity")
    assert result.exit_code == 0, result.output
    assert "credentials" not in result.stdout
    row = _source(source_id)
    assert (row.aggregation_cron, row.timezone, row.activity_enabled) == (
        "15 2 * * *", "Europe/Paris", False)
    assert row.next_activity_at is None
    assert row.next_aggregation_at is not None
    assert row.credentials_version == 1
    # 02:15 in Paris is 00:15 or 01:15 UTC.
    assert row.next_aggregation_at.minute == 15
    _one_line_error(cli("source", "update", "zoom", "--activity-cron", "61 * * * *"), 2,
                    "--activity-cron", "minute")
    _one_line_error(cli("source", "update", "zoom", "--timezone", "Mars/Olympus"), 2, "time zone")
    assert cli("source", "update", "zoom").stdout.strip() == "source zoom: nothing to change"


def test_enable_undoes_disable_and_work_starts_again(cli: Cli) -> None:
    _tenant(cli)
    source_id = _s2s_source(cli)
    assert cli("source", "disable", "zoom").exit_code == 0
    _one_line_error(cli("test-connection", "zoom"), 2, "disabled",
                    "activity-insights source enable zoom")
    result = cli("source", "enable", "zoom")
    assert result.exit_code == 0, result.output
    assert _source(source_id).status == SourceStatus.NEW
    assert cli("source", "enable", "zoom").stdout.startswith("source zoom is not disabled")
    assert cli("test-connection", "zoom").exit_code == 0


def test_a_unique_four_character_id_prefix_resolves_a_source(cli: Cli) -> None:
    _tenant(cli)
    source_id = _s2s_source(cli)
    result = cli("source", "show", str(source_id)[:4], "--json")
    assert result.exit_code == 0, result.output
    assert str(source_id) in result.stdout
    _one_line_error(cli("source", "show", str(source_id)[:3]), 2, "no source")


def test_source_add_checks_the_encryption_key_before_asking_for_the_secret(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tenant(cli)
    monkeypatch.setattr(cli_main, "_stdin_is_tty", lambda: True)
    result = cli("source", "add", "-t", "acme", "-n", "z", "--account-id", "a",
                 "--client-id", "c", input="never-read\n", env={"AI_ENCRYPTION_KEY": ""})
    _one_line_error(result, 2, "AI_ENCRYPTION_KEY")
    assert "client secret" not in result.output
    with session_scope() as session:
        assert session.exec(select(Source)).first() is None


def test_an_unreachable_broker_is_what_both_the_cli_and_status_say(cli: Cli) -> None:
    """The broker is a dead port in a real CLI process (the in-process Celery app is bound to
    the suite's broker): the CLI says nothing ran, the test row says it never started, and the
    active source does not keep a message claiming a good test."""
    _tenant(cli)
    source_id = _s2s_source(cli)
    with session_scope() as session:
        row = session.get_one(Source, source_id)
        row.status, row.status_message = SourceStatus.ACTIVE, "connection OK"
        row.last_test_ok_at = utcnow()
        session.add(row)
    env = {**os.environ, "AI_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
           "COLUMNS": "80"}
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "test-connection", "zoom", "--wait"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "nothing ran" in done.stderr
    assert "recorded as not started" in done.stderr
    with session_scope() as session:
        test = session.exec(select(ConnectionTest)).one()
    assert test.status == TS.FAILED
    assert test.started_at is None
    assert test.message.startswith("not started")
    row = _source(source_id)
    assert row.status == SourceStatus.ACTIVE
    assert row.status_message is not None
    assert "not started" in row.status_message
    shown = cli("status", env={"COLUMNS": "80"}).stdout
    assert "not started" in shown
    assert "failed" not in shown.replace("not started", "")


def test_update_sets_the_webhook_secret_token_from_the_environment(cli: Cli) -> None:
    _tenant(cli)
    source_id = _s2s_source(cli)
    result = cli("source", "update", "zoom", "--webhook-secret-token",
                 env={"AI_SOURCE_WEBHOOK_SECRET_TOKEN": "wh-" + SECRET})
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    stored = decrypt_json(_source(source_id).credentials_ciphertext)
    assert stored["webhook_secret_token"] == "wh-" + SECRET
    assert stored["client_secret"] == SECRET  # the OAuth credentials stay
