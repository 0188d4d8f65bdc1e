"""Redis itself goes away mid-run and comes back empty (a throwaway redis-server of this test's
own, killed and started again on the same port with no persistence): broker queues, unacked
messages, locks, slots and cached tokens are all lost. With nothing done by hand, the workers
reconnect and beat's sweep sends again, from Postgres, whatever was queued or running: every
run and the connection test end `succeeded` and the rows equal the fake's truth."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import _answers
from tests.worker.helpers import (
    count,
    new_test,
    stored_event_keys,
    stored_users,
    truth_event_keys,
    truth_users,
    worker_env,
)
from tests.worker.runs.harness import all_runs, fault_env, processes, wait_until
from tests.worker.runs.test_lost_messages import connection_tests_of, finished
from worker.kit.net import free_port as _free_port
from worker.models import RunKind, ZoomUser

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 10  # the fault's length, not a wait for a condition


class ThrowawayRedis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server is needed")
        self.binary, self.port = binary, _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _answers("127.0.0.1", self.port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def own_redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    try:
        yield server
    finally:
        server.kill()


def test_a_redis_restart_mid_run_loses_no_work(fake, source, own_redis, tmp_path: Path) -> None:
    _, source_id = source
    account = fake.fake.account(0)
    env: dict[str, Any] = {**fault_env(worker_env(fake)), "AI_REDIS_URL": own_redis.url,
                           "AI_BROKER_URL": own_redis.url, "AI_RESULT_BACKEND": own_redis.url}
    with processes(env, tmp_path) as start:
        worker = start("worker")
        beat = start("beat")
        fake.fake.set_faults(latency_ms=300)
        new_test(source_id)  # no message: the sweep sends it (this process's broker is another)
        wait_until(lambda: count(ZoomUser, source_id) > 0 and any(
            r.kind == RunKind.ACTIVITY and r.parent_id for r in all_runs(source_id)), 90,
            "aggregation and activity under way", worker, beat)
        own_redis.kill()
        time.sleep(OUTAGE_SECONDS)
        own_redis.start()
        fake.fake.set_faults(latency_ms=0)
        everything = {RunKind.AGGREGATION, RunKind.CORRELATION, RunKind.ACTIVITY}
        wait_until(lambda: finished(source_id, everything), 240,
                   "every run and the test to finish", worker, beat)
        assert [t.status for t in connection_tests_of(source_id)] == ["succeeded"]
        for run in all_runs(source_id):
            assert run.status == "succeeded", (run.kind, run.stream, run.error_message)
        assert stored_users(source_id) == truth_users(account)
        assert stored_event_keys(source_id) == truth_event_keys(account, source_id)
