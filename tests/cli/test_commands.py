"""`activity-insights` data commands through typer's runner, on real Postgres and Redis.

No worker runs here: the tests read what the CLI enqueued from the broker, and play the worker's
part (writing the records) from a thread when a command waits for a result.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy.exc import NoResultFound
from sqlmodel import select

from tests.broker import broker_messages
from worker.db import session_scope
from worker.kit.apikeys import hash_key
from worker.kit.crypto import decrypt_json
from worker.models import (
    ApiKey,
    ConnectionTest,
    RunKind,
    RunStatus,
    Source,
    SourceStatus,
    SyncRun,
    Tenant,
)
from worker.models import (
    TestStatus as TS,
)

Cli = Callable[..., Result]
SECRET = "s3cr3t-" + uuid.uuid4().hex


def _one_line_error(result: Result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    err = result.stderr.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("activity-insights:"), err
    for needle in needles:
        assert needle in err, err


def _tenant(cli: Cli, name: str = "acme") -> uuid.UUID:
    result = cli("tenant", "create", name)
    assert result.exit_code == 0, result.output
    return uuid.UUID(result.stdout.strip().rsplit(" ", 1)[1])


def _s2s_source(cli: Cli, tenant: str = "acme", name: str = "zoom") -> uuid.UUID:
    result = cli(
        "source", "add", "--tenant", tenant, "--name", name, "--account-id", "acc-1",
        "--client-id", "cid-1", env={"AI_SOURCE_CLIENT_SECRET": SECRET},
    )
    assert result.exit_code == 0, result.output
    return uuid.UUID(result.stdout.strip().rsplit(" ", 1)[1])


def test_tenant_create_stores_the_tenant_and_refuses_a_duplicate_in_one_line(cli: Cli) -> None:
    tenant_id = _tenant(cli)
    with session_scope() as session:
        assert session.get(Tenant, tenant_id) is not None
    _one_line_error(cli("tenant", "create", "acme"), 2, "already exists")


def test_key_create_prints_the_key_once_and_stores_only_its_hash(cli: Cli) -> None:
    tenant_id = _tenant(cli)
    result = cli("key", "create", "--tenant", "acme", "--name", "ci")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("ai_")
    with session_scope() as session:
        row = session.exec(select(ApiKey).where(ApiKey.tenant_id == tenant_id)).one()
    assert row.key_hash == hash_key(key)
    assert key not in row.key_hash
    _one_line_error(cli("key", "create", "--tenant", "acme", "--admin"), 2, "either")
    _one_line_error(cli("key", "create", "--tenant", "nobody"), 2, "no tenant 'nobody'")


def test_source_add_encrypts_credentials_and_never_prints_the_secret(cli: Cli) -> None:
    _tenant(cli)
    source_id = _s2s_source(cli)
    with session_scope() as session:
        source = session.get(Source, source_id)
        assert source is not None
    assert SECRET not in source.credentials_ciphertext
    assert decrypt_json(source.credentials_ciphertext) == {
        "account_id": "acc-1", "client_id": "cid-1", "client_secret": SECRET,
    }
    assert source.zoom_account_id == "acc-1"
    assert source.status == SourceStatus.NEW

    for args in (("source", "list"), ("source", "show", "zoom"), ("source", "show", "acme/zoom"),
                 ("source", "show", str(source_id)[:8], "--json"), ("status",)):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output
    shown = cli("source", "show", "zoom", "--json").stdout
    assert '"client_secret"' in shown
    assert "acc-1" in shown


def test_source_add_names_the_missing_credential_and_bad_schedule(cli: Cli) -> None:
    _tenant(cli)
    env = {"AI_SOURCE_CLIENT_SECRET": "x"}
    result = cli("source", "add", "-t", "acme", "-n", "z", "--client-id", "c", env=env)
    _one_line_error(result, 2, "--account-id")
    result = cli("source", "add", "-t", "acme", "-n", "z", "-g", "refresh_token",
                 "--client-id", "c", env=env)
    _one_line_error(result, 2, "refresh token (AI_SOURCE_REFRESH_TOKEN, or the prompt")
    # No terminal to prompt in and no variable: the secret is named with where it comes from.
    result = cli("source", "add", "-t", "acme", "-n", "z", "--account-id", "a", "--client-id",
                 "c")
    _one_line_error(result, 2, "client secret (AI_SOURCE_CLIENT_SECRET, or the prompt")
    result = cli("source", "add", "-t", "acme", "-n", "z", "--account-id", "a", "--client-id",
                 "c", "--activity-cron", "every day", env=env)
    _one_line_error(result, 2, "cron")
    result = cli("source", "add", "-t", "acme", "-n", "z", "--account-id", "a", "--client-id",
                 "c", "--aggregation-cron", "61 * * * *", env=env)
    _one_line_error(result, 2, "--aggregation-cron: '61 * * * *': the minute field '61'")
    result = cli("source", "add", "-t", "acme", "-n", "z", "--account-id", "a", "--client-id",
                 "c", "--timezone", "Mars/Olympus", env=env)
    _one_line_error(result, 2, "time zone")


def test_source_add_refuses_a_secret_on_the_command_line_without_echoing_it(cli: Cli) -> None:
    _tenant(cli)
    for option, env in (("--client-secret", "AI_SOURCE_CLIENT_SECRET"),
                        ("--refresh-token", "AI_SOURCE_REFRESH_TOKEN")):
        result = cli("source", "add", "-t", "acme", "-n", "z", "-g", "refresh_token",
                     "--client-id", "c", option, SECRET,
                     env={"AI_SOURCE_CLIENT_SECRET": "x", "AI_SOURCE_REFRESH_TOKEN": "y"})
        _one_line_error(result, 2, option, "never taken from the command line", env,
                        "prompted")
        assert SECRET not in result.output
    with session_scope() as session:
        assert session.exec(select(Source)).first() is None
    # Not offered in the help either; where the secrets come from is.
    shown = cli("source", "add", "--help", env={"COLUMNS": "200"}).stdout
    assert "--client-secret" not in shown
    assert "--refresh-token" not in shown
    assert "AI_SOURCE_CLIENT_SECRET" in shown


def test_source_add_prompts_for_the_secret_in_a_terminal(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.cli import main as cli_main

    _tenant(cli)
    monkeypatch.setattr(cli_main, "_stdin_is_tty", lambda: True)
    result = cli("source", "add", "-t", "acme", "-n", "z", "--account-id", "a", "--client-id",
                 "c", input=SECRET + "\n")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    with session_scope() as session:
        source = session.exec(select(Source)).one()
    assert decrypt_json(source.credentials_ciphertext)["client_secret"] == SECRET


def test_secrets_can_come_from_the_environment_instead_of_argv(cli: Cli) -> None:
    _tenant(cli)
    result = cli("source", "add", "-t", "acme", "-n", "rt", "-g", "refresh_token",
                 "--client-id", "c", env={"AI_SOURCE_CLIENT_SECRET": SECRET,
                                          "AI_SOURCE_REFRESH_TOKEN": "rt-" + SECRET})
    assert result.exit_code == 0, result.output
    with session_scope() as session:
        source = session.exec(select(Source).where(Source.name == "rt")).one()
    assert decrypt_json(source.credentials_ciphertext)["refresh_token"] == "rt-" + SECRET


def test_unknown_and_ambiguous_sources_are_one_line_errors(cli: Cli) -> None:
    _tenant(cli, "acme")
    _tenant(cli, "globex")
    _s2s_source(cli, "acme", "zoom")
    _s2s_source(cli, "globex", "zoom")
    _one_line_error(cli("source", "show", "nope"), 2, "no source 'nope'")
    _one_line_error(cli("test-connection", "zoom"), 2, "TENANT/NAME")
    assert cli("source", "show", "globex/zoom").exit_code == 0


def test_test_connection_enqueues_ids_only_on_its_own_queue(cli: Cli, redis_client: Any) -> None:
    tenant_id = _tenant(cli)
    source_id = _s2s_source(cli)
    result = cli("test-connection", "zoom", "--no-wait")
    assert result.exit_code == 0, result.output
    with session_scope() as session:
        test = session.exec(select(ConnectionTest)).one()
    assert test.status == TS.QUEUED
    assert test.source_id == source_id
    (message,) = broker_messages(redis_client, "connection_tests")
    assert message["headers"]["task"] == "zoom.test_connection"
    assert message["args"] == [str(test.id)]
    assert message["headers"]["tenant_id"] == str(tenant_id)
    assert SECRET not in str(message)


def test_what_flower_shows_of_a_task_names_its_tenant_and_source(
    cli: Cli, redis_client: Any
) -> None:
    import ast

    name = "O'Brien \"& Co\""  # quotes survive as a Python literal (what Flower parses)
    tenant_id = _tenant(cli, name)
    source_id = _s2s_source(cli, name, "zoom-prod")
    assert cli("test-connection", str(source_id), "--no-wait").exit_code == 0
    assert cli("aggregate", str(source_id), "--no-wait").exit_code == 0
    messages = [*broker_messages(redis_client, "connection_tests"),
                *broker_messages(redis_client, "aggregation")]
    assert [m["headers"]["task"] for m in messages] == ["zoom.test_connection", "zoom.aggregate"]
    for message in messages:
        assert ast.literal_eval(message["headers"]["kwargsrepr"]) == {
            "tenant": name, "source": "zoom-prod", "tenant_id": str(tenant_id),
            "source_id": str(source_id)}
        assert message["kwargs"] == {}  # a label only: the task itself gets ids as args
        assert name not in message["headers"]["task"]
    # A source the sender cannot find (no such row) goes out with its ids alone.
    from worker.dispatch import shown_kwargs

    other = uuid.uuid4()
    assert ast.literal_eval(shown_kwargs(tenant_id, other)) == {
        "tenant_id": str(tenant_id), "source_id": str(other)}


class _Later(threading.Thread):
    """Plays the worker in the background: applies `fn` once the CLI has created the row it
    looks for (`fn` raising NoResultFound means "not yet"), within a generous deadline. An
    assertion failing inside `fn` is raised again by `join`, in the test."""

    def __init__(self, fn: Callable[[], None], deadline: float = 60) -> None:
        super().__init__(daemon=True)
        self.fn, self.deadline, self.error = fn, deadline, None

    def run(self) -> None:
        end = time.monotonic() + self.deadline
        while True:
            try:
                self.fn()
                return
            except NoResultFound as exc:
                if time.monotonic() > end:
                    self.error = exc
                    return
                time.sleep(0.1)
            except BaseException as exc:
                self.error = exc
                return

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error


def _later(fn: Callable[[], None]) -> _Later:
    thread = _Later(fn)
    thread.start()
    return thread


def test_test_connection_wait_shows_the_missing_scope_and_what_to_fix(cli: Cli) -> None:
    _tenant(cli)
    _s2s_source(cli)

    def worker_says_scope_missing() -> None:
        with session_scope() as session:
            test = session.exec(select(ConnectionTest)).one()
            test.status = TS.FAILED
            test.granted_scopes = ["user:read:admin"]
            test.missing_scopes = ["report:read:admin"]
            test.zoom_error_code = "missing_scope"
            test.message = "scope report:read:admin missing: add it and re-activate"
            test.finished_at = datetime.now(UTC)

    thread = _later(worker_says_scope_missing)
    result = cli("test-connection", "zoom", "--wait", "--timeout", "60")
    thread.join()
    assert result.exit_code == 1, result.output
    assert "connection failed" in result.stdout
    assert "report:read:admin" in result.stdout
    assert "what to fix" in result.stdout
    assert "Scopes page" in result.stdout


def test_test_connection_wait_times_out_with_a_hint_about_workers(cli: Cli) -> None:
    _tenant(cli)
    _s2s_source(cli)
    result = cli("test-connection", "zoom", "--wait", "--timeout", "1")
    _one_line_error(result, 1, "activity-insights worker")


def test_aggregate_wait_follows_the_run_record_to_the_end(cli: Cli) -> None:
    _tenant(cli)
    _s2s_source(cli)

    def worker_aggregates() -> None:
        with session_scope() as session:
            run = session.exec(select(SyncRun)).one()
            assert run.kind == RunKind.AGGREGATION
            assert run.trigger == "cli"
            run.status, run.seen, run.inserted, run.pages = RunStatus.SUCCEEDED, 42, 40, 2
            run.finished_at = datetime.now(UTC)

    thread = _later(worker_aggregates)
    result = cli("aggregate", "zoom", "--wait", "--timeout", "60")
    thread.join()
    assert result.exit_code == 0, result.output
    assert "seen 42" in result.stdout
    _reads_at_80_columns(result.stdout)


def _reads_at_80_columns(text: str) -> None:
    """Captured like a pipe: plain lines within 80 columns, nothing cut, no redrawn bars."""
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "…" not in text, text
    assert "\r" not in text, text
    assert "\x1b" not in text, text


def test_aggregate_wait_skipped_as_a_duplicate_follows_the_run_that_held_it_even_once_ended(
    cli: Cli,
) -> None:
    # The aggregation a first connection test starts can end before the CLI sees its own run
    # skipped: the outcome the operator waits for is still that run's.
    _tenant(cli)
    source_id = _s2s_source(cli)
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        holder = SyncRun(tenant_id=source.tenant_id, source_id=source_id,
                         kind=RunKind.AGGREGATION, status=RunStatus.SUCCEEDED, seen=42,
                         finished_at=datetime.now(UTC))
        session.add(holder)
        session.flush()
        holder_id = str(holder.id)

    def worker_skips() -> None:
        with session_scope() as session:
            mine = session.exec(select(SyncRun).where(SyncRun.trigger == "cli")).one()
            mine.status = RunStatus.SKIPPED
            mine.details = {"duplicate_of": holder_id}
            mine.error_message = f"skipped: aggregation run {holder_id} is already in progress"

    thread = _later(worker_skips)
    result = cli("aggregate", "zoom", "--wait", "--timeout", "60")
    thread.join()
    assert result.exit_code == 0, result.output
    assert f"following {holder_id}" in result.stdout
    assert "seen 42" in result.stdout
    _reads_at_80_columns(result.stdout)

def test_a_failed_run_exits_non_zero_with_its_message(cli: Cli) -> None:
    _tenant(cli)
    _s2s_source(cli)

    def worker_fails() -> None:
        with session_scope() as session:
            run = session.exec(select(SyncRun)).one()
            run.status, run.error_message = RunStatus.FAILED, "client secret rejected by Zoom"

    thread = _later(worker_fails)
    result = cli("aggregate", "zoom", "--wait", "--timeout", "60")
    thread.join()
    _one_line_error(result, 1, "client secret rejected by Zoom")


def test_sync_activity_passes_the_window_and_shows_chunk_progress(cli: Cli) -> None:
    _tenant(cli)
    _s2s_source(cli)

    def worker_plans_and_runs_chunks() -> None:
        with session_scope() as session:
            plan = session.exec(select(SyncRun)).one()
            assert plan.window_start == datetime(2026, 9, 1, tzinfo=UTC)
            # --to is inclusive of its day
            assert plan.window_end == datetime(2026, 10, 16, tzinfo=UTC)
            plan.status = RunStatus.SUCCEEDED
            for stream in ("signins", "meetings"):
                for month in (0, 1):
                    start = datetime(2026, 9, 1, tzinfo=UTC) + timedelta(days=30 * month)
                    session.add(SyncRun(
                        tenant_id=plan.tenant_id, source_id=plan.source_id, parent_id=plan.id,
                        kind=RunKind.ACTIVITY, stream=stream, status=RunStatus.SUCCEEDED,
                        window_start=start, window_end=start + timedelta(days=30),
                        seen=10, pages=1,
                    ))

    thread = _later(worker_plans_and_runs_chunks)
    result = cli("sync-activity", "zoom", "--from", "2026-09-01", "--to", "2026-10-15",
                 "--wait", "--timeout", "60")
    thread.join()
    assert result.exit_code == 0, result.output
    assert "4 chunks, 40 records read, 0 not succeeded" in result.stdout
    assert "signins" in result.stdout
    assert "meetings" in result.stdout
    _reads_at_80_columns(result.stdout)


def test_sync_activity_rejects_bad_dates(cli: Cli) -> None:
    _tenant(cli)
    _s2s_source(cli)
    _one_line_error(cli("sync-activity", "zoom", "--from", "yesterday"), 2, "--from")
    _one_line_error(cli("sync-activity", "zoom", "--to", "2026-01-01"), 2, "--to needs --from")
    _one_line_error(
        cli("sync-activity", "zoom", "--from", "2026-02-01", "--to", "2026-01-01"), 2, "before"
    )


def test_disabled_sources_start_nothing(cli: Cli, redis_client: Any) -> None:
    _tenant(cli)
    _s2s_source(cli)
    assert cli("source", "disable", "zoom").exit_code == 0
    _one_line_error(cli("aggregate", "zoom"), 2, "disabled")
    assert broker_messages(redis_client, "aggregation") == []


def test_status_shows_tests_runs_counts_and_failures(cli: Cli) -> None:
    _tenant(cli)
    source_id = _s2s_source(cli)
    with session_scope() as session:
        source = session.get(Source, source_id)
        assert source is not None
        now = datetime.now(UTC)
        session.add(ConnectionTest(tenant_id=source.tenant_id, source_id=source.id,
                                   status=TS.SUCCEEDED, finished_at=now))
        session.add(SyncRun(tenant_id=source.tenant_id, source_id=source.id,
                            kind=RunKind.AGGREGATION, status=RunStatus.SUCCEEDED, seen=61,
                            inserted=61, finished_at=now))
        session.add(SyncRun(tenant_id=source.tenant_id, source_id=source.id,
                            kind=RunKind.ACTIVITY, status=RunStatus.FAILED,
                            error_message="Zoom said no", finished_at=now))
        source.next_activity_at = now + timedelta(hours=3)
        session.add(source)
    result = cli("status")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for needle in ("acme", "zoom", "ok", "seen 61", "failed", "Zoom said no", "act "):
        assert needle in out, needle


def test_bad_settings_are_one_line(cli: Cli) -> None:
    result = cli("status", env={"AI_DATABASE_URL": "mysql://nope"})
    assert result.exit_code == 2
    assert "AI_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.output


def test_an_unreachable_database_is_one_line(cli: Cli) -> None:
    result = cli("status", env={"AI_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/x"})
    _one_line_error(result, 3, "cannot use the database")


def test_an_unmigrated_database_says_to_run_db_upgrade(cli: Cli, tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    result = cli("tenant", "create", "x", env={"AI_DATABASE_URL": url})
    _one_line_error(result, 2, "db upgrade")


def test_db_current_reports_head(cli: Cli) -> None:
    result = cli("db", "current")
    assert result.exit_code == 0
    assert "up to date" in result.stdout


def test_the_webhook_secret_token_is_set_encrypted_and_never_echoed(cli: Cli) -> None:
    _tenant(cli)
    source_id = _s2s_source(cli)
    # One way to set it, like the other secrets: `source update`, from the environment or a
    # hidden prompt, never argv.
    result = cli("source", "update", "zoom", "--webhook-secret-token",
                 env={"AI_SOURCE_WEBHOOK_SECRET_TOKEN": "wh-cli-secret-token"})
    assert result.exit_code == 0, result.output
    assert f"/v1/webhooks/zoom/{source_id}" in result.stdout
    assert "wh-cli-secret-token" not in result.output
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        assert "wh-cli-secret-token" not in source.credentials_ciphertext
        stored = decrypt_json(source.credentials_ciphertext)
    assert stored["webhook_secret_token"] == "wh-cli-secret-token"
    assert stored["client_secret"] == SECRET  # the OAuth credentials stay
    shown = cli("source", "show", "zoom", "--json")
    assert "webhook_secret_token" in shown.stdout
    assert "wh-cli-secret-token" not in shown.stdout
    assert cli("source", "webhook-secret", "zoom").exit_code != 0  # the second command is gone


def test_every_command_the_readme_cli_section_names_exists(cli: Cli) -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## The operator CLI", 1)[1].split("\n## ", 1)[0]
    groups = {"db", "tenant", "key", "source", "identities", "insights"}
    seen: set[tuple[str, ...]] = set()
    for line in section.splitlines():
        words = line.split("activity-insights ", 1)[1].split() if "activity-insights " in line \
            else []
        if not words or words[0].startswith(("-", "`", "...")):
            continue
        command = tuple(words[:2]) if words[0] in groups else (words[0],)
        seen.add(tuple(w.rstrip("`") for w in command))
    assert ("source", "update") in seen, seen
    assert ("insights", "idle") in seen, seen
    for command in sorted(seen):
        result = cli(*command, "--help")
        assert result.exit_code == 0, (command, result.output)
