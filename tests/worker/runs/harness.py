"""Real processes for the run-lifecycle fault tests: `celery worker`s and one `celery beat`, each
in its own process group, logging to a file; a throwaway Postgres cluster that can be stopped
and started again; and waits on conditions with generous deadlines (never fixed sleeps).

Settings are the defaults except what makes the faults quick to see: a short lock lease
(`LEASE_SECONDS`, so a dead holder's lease runs out in seconds) and a fast beat tick. The
broker's visibility timeout stays at its default (4 h): nothing here is brought back by the
broker's own redelivery.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, pool, text
from sqlmodel import col, select

from tests.services import _binary
from worker.db import dispose_engines, session_scope
from worker.kit.net import free_port as _free_port
from worker.models import RunStatus, SyncRun

ROOT = Path(__file__).resolve().parents[3]
# Overridable to measure with the defaults (AI_TEST_FAULT_LEASE_SECONDS=60, ..._TICK_SECONDS=30).
LEASE_SECONDS = float(os.environ.get("AI_TEST_FAULT_LEASE_SECONDS", "3"))
TICK_SECONDS = float(os.environ.get("AI_TEST_FAULT_TICK_SECONDS", "1"))
QUEUES = "connection_tests,aggregation,activity,scheduling"


def fault_env(base: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **base,
           "AI_LOCK_LEASE_SECONDS": str(LEASE_SECONDS),
           "AI_DISPATCH_INTERVAL_SECONDS": str(TICK_SECONDS),
           "AI_REQUEUE_COUNTDOWN_SECONDS": "1",
           "AI_RETRY_BASE_SECONDS": "1"}
    env.pop("AI_BROKER_VISIBILITY_TIMEOUT", None)
    return env


class Proc:
    """A Celery process in its own process group (SIGKILL takes its pool children too)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv, self.env, self.log = argv, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "worker.tasks",
                                      *self.argv], cwd=ROOT, env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        out.close()  # the child has its own copy of the descriptor
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def holds(self, pid: int) -> bool:
        """Is `pid` (a run's `held_by`) this process or one of its pool children?"""
        try:
            return self.proc is not None and os.getpgid(pid) == self.proc.pid
        except ProcessLookupError:
            return False

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self) -> None:
        """SIGTERM to the main process only, as `docker stop` does to a container's PID 1."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.kill()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self) -> str:
        return self.text()[-6000:]


def worker_proc(env: dict[str, str], log: Path, concurrency: int = 2) -> Proc:
    return Proc(["worker", "-P", "prefork", "-c", str(concurrency), "-Q", QUEUES,
                 "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info",
                 "-n", f"fault-{uuid.uuid4().hex[:6]}@%h"], env, log)


def beat_proc(env: dict[str, str], log: Path) -> Proc:
    return Proc(["beat", "-l", "info", "-s", str(log.with_suffix(".schedule")),
                 "--pidfile="], env, log)


@contextmanager
def processes(env: dict[str, str], tmp: Path) -> Iterator[Callable[..., Proc]]:
    """`start("worker")` / `start("beat")`; everything started is stopped at the end."""
    started: list[Proc] = []

    def start(kind: str = "worker", **kw: Any) -> Proc:
        log = tmp / f"{kind}-{len(started)}.log"
        proc = (beat_proc(env, log) if kind == "beat" else worker_proc(env, log, **kw)).start()
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               *procs: Proc) -> float:
    """Wait for `predicate`; returns the seconds it took. On time-out, fail with the logs."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return time.monotonic() - started
        except Exception:  # e.g. Postgres still starting: ask again
            pass
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.log.name} ---\n{p.tail()}" for p in procs)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


def all_runs(source_id: uuid.UUID) -> list[SyncRun]:
    with session_scope() as session:
        return list(session.exec(select(SyncRun).where(SyncRun.source_id == source_id)
                                 .order_by(col(SyncRun.created_at))))


def holder_pid(run: SyncRun) -> int | None:
    held = run.details.get("held_by")
    return int(str(held).rsplit(":", 1)[1]) if held else None


ACTIVE = {RunStatus.QUEUED, RunStatus.RUNNING}


def settled(source_id: uuid.UUID) -> bool:
    runs = all_runs(source_id)
    return bool(runs) and all(r.status not in ACTIVE for r in runs)


class ThrowawayPostgres:
    """A Postgres cluster of the test's own, which the test may stop and start again."""

    def __init__(self) -> None:
        initdb, self.pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if not (initdb and self.pg_ctl):
            raise RuntimeError("the Postgres server binaries (initdb, pg_ctl) are needed")
        self.workdir = tempfile.mkdtemp(prefix="ai-pg-outage-")
        self.port = _free_port()
        self.run_as: list[str] = []
        if os.geteuid() == 0:  # postgres refuses to run as root
            shutil.chown(self.workdir, "postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]
        self.data = os.path.join(self.workdir, "data")
        subprocess.run([*self.run_as, initdb, "-D", self.data, "-U", "postgres", "-A", "trust"],
                       check=True, capture_output=True)
        self.start()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/outage"
        admin = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres",
                              poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE outage"))
        admin.dispose()

    def _ctl(self, *args: str) -> None:
        assert self.pg_ctl is not None
        subprocess.run([*self.run_as, self.pg_ctl, "-D", self.data, *args], check=True,
                       capture_output=True)

    def start(self) -> None:
        self._ctl("-l", os.path.join(self.workdir, "log"), "-w", "-o",
                  f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off", "start")

    def stop(self) -> None:
        """A fast shutdown: every open connection is cut, as in a real outage."""
        self._ctl("-m", "fast", "-w", "stop")

    def close(self) -> None:
        subprocess.run([*self.run_as, str(self.pg_ctl), "-D", self.data, "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def database_at(url: str) -> Iterator[None]:
    """This process (and what it starts) uses the database at `url` until exit."""
    from worker import migrate
    from worker.settings import get_settings

    saved = os.environ.get("AI_DATABASE_URL")
    os.environ["AI_DATABASE_URL"] = url
    get_settings.cache_clear()
    # close=True: these are this process's own connections (not a forked child's), and one
    # dropped open is a psycopg ResourceWarning.
    dispose_engines(close=True)
    migrate.upgrade(url)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["AI_DATABASE_URL"] = saved
        get_settings.cache_clear()
        dispose_engines(close=True)
