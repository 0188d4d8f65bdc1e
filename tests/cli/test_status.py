"""`status`, `source list` and `source show` at 80 columns (COLUMNS=80 through the runner, and a
real piped process without COLUMNS), `status --json` and `source list --json`, on the suite's
Postgres."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

from tests.cli.test_commands import Cli, _s2s_source, _tenant
from worker.db import session_scope
from worker.models import ConnectionTest, RunKind, RunStatus, Source, SourceStatus, SyncRun
from worker.models import TestStatus as TS

# Numbered words: a word cut in two shows up as "word1" or "rd17", which the check below sees.
LONG = " ".join(f"word{n:02d}" for n in range(1, 41))


def _long_messages(source_id: uuid.UUID) -> None:
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        source.status, source.status_message = SourceStatus.FAILING, "status " + LONG
        now = datetime.now(UTC)
        session.add(ConnectionTest(tenant_id=source.tenant_id, source_id=source.id,
                                   status=TS.FAILED, message="test " + LONG, finished_at=now,
                                   zoom_error_code="4711"))
        session.add(SyncRun(tenant_id=source.tenant_id, source_id=source.id,
                            kind=RunKind.AGGREGATION, status=RunStatus.SUCCEEDED, seen=61,
                            inserted=61, finished_at=now))
        session.add(SyncRun(tenant_id=source.tenant_id, source_id=source.id,
                            kind=RunKind.ACTIVITY, status=RunStatus.FAILED,
                            error_message="run " + LONG, finished_at=now))
        source.next_activity_at = now + timedelta(hours=3)
        session.add(source)


def _reads_at_80_columns(out: str) -> None:
    lines = out.splitlines()
    assert lines, out
    assert max(len(line) for line in lines) <= 80, "\n".join(
        line for line in lines if len(line) > 80)
    for token in re.findall(r"\S*word\S*|\S*ord\d\S*|\S*rd\d\d\S*", out):
        assert re.fullmatch(r"word\d\d", token), (token, out)
    assert "…" in out  # the long messages were shortened, at a word boundary


def test_status_reads_at_80_columns_without_cutting_words(cli: Cli) -> None:
    _tenant(cli, "a-tenant-with-a-long-name")
    source_id = _s2s_source(cli, "a-tenant-with-a-long-name", "a-source-with-a-long-name")
    _long_messages(source_id)
    result = cli("status", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    _reads_at_80_columns(out)
    for needle in ("a-tenant-with-a-long-name/a-source-with-a-long-name", str(source_id)[:8],
                   "failing", "last test", "failed", "seen 61", "act ", "1 in 24h"):
        assert needle in out, (needle, out)


def test_status_piped_to_another_process_reads_at_80_columns(cli: Cli) -> None:
    _tenant(cli)
    _long_messages(_s2s_source(cli))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run([sys.executable, "-m", "worker.cli", "status"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    _reads_at_80_columns(done.stdout)


def test_status_json_has_every_source_with_its_test_runs_and_failures(cli: Cli) -> None:
    _tenant(cli)
    source_id = _s2s_source(cli)
    _long_messages(source_id)
    result = cli("status", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["tenant"]["name"] == "acme"
    assert row["source"]["id"] == str(source_id)
    assert row["source"]["status"] == "failing"
    assert row["last_test"]["status"] == "failed"
    assert row["last_test"]["message"] == "test " + LONG
    assert row["last_test"]["started"] is True
    assert row["last_runs"]["aggregation"]["seen"] == 61
    assert row["last_runs"]["correlation"] is None
    assert row["last_runs"]["activity"]["error_message"] == "run " + LONG
    assert row["failures_24h"] == 1
    assert row["last_failure"]["kind"] == "activity"
    assert json.loads(cli("status", "--json", "-t", "acme").stdout)[0]["source"]["name"] == "zoom"


def test_source_list_reads_at_80_columns_and_shows_why_a_source_is_not_active(cli: Cli) -> None:
    _tenant(cli, "a-tenant-with-a-long-name")
    long_id = _s2s_source(cli, "a-tenant-with-a-long-name", "a-source-with-a-long-name")
    _long_messages(long_id)
    _tenant(cli)
    short_id = _s2s_source(cli)
    result = cli("source", "list", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    _reads_at_80_columns(out)
    for needle in ("a-tenant-with-a-long-name/a-source-with-a-long-name", "acme/zoom",
                   str(long_id)[:8], str(short_id)[:8], "failing", "new", "s2s", "status word01",
                   "run a connection test"):
        assert needle in out, (needle, out)
    # Wide enough, the full ids (copyable); --json has them always.
    wide = cli("source", "list", env={"COLUMNS": "160"}).stdout
    assert str(long_id) in wide
    assert str(short_id) in wide
    assert max(len(line) for line in wide.splitlines()) <= 160
    [row] = json.loads(cli("source", "list", "--json", "-t", "acme").stdout)
    assert row == {"tenant": {"id": row["tenant"]["id"], "name": "acme"}, "id": str(short_id),
                   "name": "zoom", "grant_type": "account_credentials", "status": "new",
                   "status_message": "run a connection test to start syncing",
                   "last_test_ok_at": None}


def test_source_list_piped_to_another_process_reads_at_80_columns(cli: Cli) -> None:
    _tenant(cli, "a-tenant-with-a-long-name")
    _long_messages(_s2s_source(cli, "a-tenant-with-a-long-name", "a-source-with-a-long-name"))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run([sys.executable, "-m", "worker.cli", "source", "list"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    _reads_at_80_columns(done.stdout)
    assert "a-source-with-a-long-name" in done.stdout


def test_source_show_piped_reads_at_80_columns(cli: Cli) -> None:
    _tenant(cli, "a-tenant-with-a-long-name")
    _long_messages(_s2s_source(cli, "a-tenant-with-a-long-name", "a-source-with-a-long-name"))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run([sys.executable, "-m", "worker.cli", "source", "show",
                           "a-source-with-a-long-name"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, done.stdout
    # The whole message is there, wrapped between words, none cut.
    words = re.findall(r"\S*word\S*|\S*ord\d\S*|\S*rd\d\d\S*", done.stdout)
    assert words == [f"word{n:02d}" for n in range(1, 41)], done.stdout
