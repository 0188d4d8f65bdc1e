"""Structured logs: one JSON object a line carrying the ids of the work, httpx kept quiet."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from worker import logs
from worker.cli import launch as launchers
from worker.dispatch import enqueue_connection_test
from worker.settings import get_settings


def _record(message: str, *args: object, exc: BaseException | None = None
            ) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("worker.test", logging.WARNING, __file__, 1, message, args, exc_info)


def test_a_json_line_carries_the_bound_ids_and_the_error() -> None:
    try:
        raise ValueError("bad page")
    except ValueError as exc:
        caught = exc
    with logs.bound(tenant_id="t-1", source_id="s-1", run_id=None):
        line = logs.JsonFormatter().format(_record("run %s failed", "r-9", exc=caught))
    entry = json.loads(line)
    assert entry["message"] == "run r-9 failed"
    assert entry["level"] == "warning"
    assert entry["logger"] == "worker.test"
    assert entry["tenant_id"] == "t-1"
    assert entry["source_id"] == "s-1"
    assert "run_id" not in entry
    assert entry["error"] == "ValueError: bad page"
    assert "Traceback" in entry["traceback"]
    assert "\n" not in line
    assert "tenant_id" not in json.loads(logs.JsonFormatter().format(_record("outside")))


def test_the_text_format_appends_the_ids_once() -> None:
    record = _record("hello")
    with logs.bound(tenant_id="t-2"):
        logs.ContextFilter().filter(record)
        logs.ContextFilter().filter(record)
    assert record.getMessage() == "hello [tenant_id=t-2]"


@pytest.mark.parametrize(("level", "httpx_level"), [("INFO", logging.WARNING),
                                                    ("DEBUG", logging.DEBUG)])
def test_httpx_request_lines_only_when_debugging(level: str, httpx_level: int) -> None:
    root = logging.getLogger("ai-test-root")
    logs.configure(level, "json", root=root)
    assert logging.getLogger("httpx").level == httpx_level
    logs.quiet_chatty_libraries("INFO")


@pytest.mark.slow
@pytest.mark.usefixtures("clean_db", "redis_client")
def test_a_worker_logs_json_lines_with_the_tenant_of_the_task(
    tmp_path: Path
) -> None:
    settings = get_settings()
    log = tmp_path / "worker.log"
    launch = launchers.worker_command(settings, ["connection_tests"], 1, "logs",
                                      extra=("--without-gossip", "--without-mingle"))
    env = {**os.environ, **launch.env, "AI_LOG_FORMAT": "json"}
    tenant, source, missing = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with log.open("wb") as out:
        proc = subprocess.Popen(launch.argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        # A test id that does not exist: the task fails and logs it, inside the task's context.
        enqueue_connection_test(missing, tenant_id=tenant, source_id=source)
        deadline = time.monotonic() + 120
        mine: list[dict[str, str]] = []
        while time.monotonic() < deadline and not mine:
            time.sleep(0.5)
            entries = []
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    entries.append(json.loads(line))
            mine = [e for e in entries if e.get("tenant_id") == str(tenant)]
        assert mine, log.read_text(errors="replace")[-3000:]
        assert all(e["source_id"] == str(source) and e["run_id"] == str(missing)
                   and e["task"] == "zoom.test_connection" for e in mine)
        assert settings.encryption_key not in log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
