"""The CLI with real processes: Flower and a Celery worker (started by the CLI's own launchers)
on the test Redis and Postgres, fakezoom as Zoom. Proves that `test-connection --wait` and
`aggregate --wait` work end to end, and that nothing Flower's API returns about those tasks
contains a source's secret, while its task list names each task's tenant and source and shows a
failed connection test as FAILURE."""

from __future__ import annotations

import ast
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result

from fakezoom.server import FakeZoomServer
from fakezoom.testing import small_config
from worker.cli import launch as launchers
from worker.kit.net import free_port
from worker.settings import get_settings

pytestmark = pytest.mark.slow
Cli = Callable[..., Result]


@contextlib.contextmanager
def _process(launch: launchers.Launch, env: dict[str, str], log: Path) -> Iterator[
        subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(launch.argv, env={**env, **launch.env}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def _wait_for(check: Callable[[], bool], what: str, log: Path, timeout: float = 120) -> None:
    # Generous: on a loaded 2-core machine Flower and a prefork worker take a while to start.
    deadline = time.monotonic() + timeout
    while not _holds(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def _holds(check: Callable[[], bool]) -> bool:
    """A check that fails on a server still starting (refused, non-JSON) is just not true yet."""
    try:
        return check()
    except (httpx.HTTPError, ValueError):
        return False


def test_flower_shows_the_tasks_but_never_a_secret(
    cli: Cli, tmp_path: Path
) -> None:
    fake_config = small_config(users=12, days=3, seed=11)
    with FakeZoomServer(fake_config) as zoom:
        s2s = zoom.fake.account(0).s2s_app
        env = {**os.environ, "AI_ZOOM_OAUTH_URL": zoom.oauth_token_url,
               "AI_ZOOM_API_URL": zoom.api_url}
        settings = get_settings()
        port = free_port()
        flower_log, worker_log = tmp_path / "flower.log", tmp_path / "worker.log"
        auth = (settings.flower_user, settings.flower_password)

        # Flower must be listening before tasks run: it learns about them from their events.
        with _process(launchers.flower_command(settings, host="127.0.0.1", port=port), env,
                      flower_log):

            def flower_up() -> bool:
                return httpx.get(f"http://127.0.0.1:{port}/healthcheck", auth=auth,
                                 timeout=1).status_code == 200

            _wait_for(flower_up, "flower", flower_log)
            # Basic auth is enforced, on the Prometheus endpoint too.
            assert httpx.get(f"http://127.0.0.1:{port}/api/tasks", timeout=5).status_code == 401
            assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 401
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", auth=auth, timeout=5)
            assert metrics.status_code == 200
            assert "flower_" in metrics.text

            worker = launchers.worker_command(settings, launchers.ALL_QUEUES, 2, "live",
                                              extra=("--without-gossip", "--without-mingle"))
            with _process(worker, env, worker_log):
                _wait_for(lambda: b" ready." in worker_log.read_bytes(), "worker", worker_log)

                # Flower answering HTTP is not Flower receiving events: its event consumer
                # connects on its own schedule, and a task sent before that is never listed.
                # The worker list of the events state fills only once events arrive.
                def flower_hears_the_worker() -> bool:
                    response = httpx.get(f"http://127.0.0.1:{port}/workers", auth=auth,
                                         params={"json": 1}, timeout=5)
                    return bool(response.json().get("data"))

                _wait_for(flower_hears_the_worker, "flower's event stream", flower_log)
                assert cli("tenant", "create", "acme").exit_code == 0
                added = cli("source", "add", "-t", "acme", "-n", "zoom", "--account-id",
                            s2s.account_id, "--client-id", s2s.client_id,
                            env={"AI_SOURCE_CLIENT_SECRET": s2s.client_secret})
                assert added.exit_code == 0, added.output
                source_id = added.stdout.strip().rsplit(" ", 1)[1]
                tenant_id = cli("tenant", "list").stdout.split()[0]

                tested = cli("test-connection", "acme/zoom", "--wait", "--timeout", "120")
                assert tested.exit_code == 0, tested.output + worker_log.read_text()
                assert "connection OK" in tested.stdout

                aggregated = cli("aggregate", "acme/zoom", "--wait", "--timeout", "120")
                assert aggregated.exit_code == 0, aggregated.output
                assert "seen 12" in aggregated.stdout

                # A failed connection test: recorded, and a failure in Flower too.
                wrong = "wrong-" + uuid.uuid4().hex
                bad = cli("source", "add", "-t", "acme", "-n", "bad", "--account-id",
                          s2s.account_id, "--client-id", s2s.client_id,
                          env={"AI_SOURCE_CLIENT_SECRET": wrong})
                assert bad.exit_code == 0, bad.output
                bad_id = bad.stdout.strip().rsplit(" ", 1)[1]
                failed = cli("test-connection", "acme/bad", "--wait", "--timeout", "120")
                assert failed.exit_code == 1, failed.output

                # The first good test also started correlation and a backfill: status settles
                # once they have, so wait for it rather than read it at one instant.
                shown = {"text": ""}

                def status_shows_success() -> bool:
                    shown["text"] = cli("status").stdout
                    return "succeeded" in shown["text"] and "ok" in shown["text"]

                try:
                    _wait_for(status_shows_success, "status", worker_log)
                except AssertionError:
                    raise AssertionError(f"status never showed success:\n{shown['text']}") from None

                tasks: dict[str, Any] = {}

                def flower_saw_them() -> bool:
                    nonlocal tasks
                    response = httpx.get(f"http://127.0.0.1:{port}/api/tasks", auth=auth,
                                         timeout=5)
                    tasks = response.json()
                    names = {t.get("name") or "" for t in tasks.values()}
                    return any("zoom.test_connection" in n for n in names) and any(
                        "zoom.aggregate" in n for n in names)

                _wait_for(flower_saw_them, "flower task list", flower_log)

                def bad_test_is_a_failure() -> bool:
                    listed = httpx.get(f"http://127.0.0.1:{port}/api/tasks", auth=auth,
                                       timeout=5, params={"search": "kwargs:source=bad"}).json()
                    return [t.get("state") for t in listed.values()] == ["FAILURE"]

                _wait_for(bad_test_is_a_failure, "the failed test in flower", flower_log)
                # An operator finds one tenant's tasks by its name in Flower's search box.
                found = httpx.get(f"http://127.0.0.1:{port}/api/tasks", auth=auth, timeout=5,
                                  params={"search": "kwargs:tenant=acme"}).json()
                # (Tasks may still arrive between the two reads: later ones are acme's too.)
                assert set(tasks) <= set(found), (found, tasks)
                assert all("'tenant': 'acme'" in t["kwargs"] for t in found.values()), found
                assert httpx.get(f"http://127.0.0.1:{port}/api/tasks", auth=auth, timeout=5,
                                 params={"search": "kwargs:tenant=globex"}).json() == {}
                details = [
                    httpx.get(f"http://127.0.0.1:{port}/api/task/info/{task_id}", auth=auth,
                              timeout=5).text
                    for task_id in tasks
                ]

    everything = repr(tasks) + "".join(details)
    assert s2s.client_secret not in everything
    assert wrong not in everything
    assert get_settings().encryption_key not in everything
    # What Flower shows as a task's arguments is ids only.
    received = [info for info in tasks.values() if info.get("received")]
    assert received
    for info in received:
        args = ast.literal_eval(info["args"])
        assert [str(uuid.UUID(a)) for a in args] == list(args), info
        # The tenant and source ride along, recognisable (their names) and exact (their ids);
        # the task name carries neither (one Flower series per task, not per tenant).
        shown = ast.literal_eval(info["kwargs"])
        assert shown in ({"tenant": "acme", "source": "zoom", "tenant_id": tenant_id,
                          "source_id": source_id},
                         {"tenant": "acme", "source": "bad", "tenant_id": tenant_id,
                          "source_id": bad_id}), info
        assert "acme" not in info["name"], info
