"""The demo's processes: embedded Redis, fakezoom, Celery workers, beat, the API and Flower.

`Stack` starts each piece the way production runs it (the launchers of `activity-insights`),
in its own session so a Ctrl-C in the terminal reaches only the demo, which then stops
everything in order: SIGTERM to each process group, SIGKILL to what has not exited in time.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx
import redis
from cryptography.fernet import Fernet
from sqlalchemy.exc import OperationalError

from worker import migrate as migrations
from worker.cli import launch as launchers
from worker.kit.net import free_port
from worker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


class StackError(RuntimeError):
    """A piece of the demo did not start; the message names it and its log file."""


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


@dataclass
class StackConfig:
    data_dir: Path = ROOT / "demo-data"
    # None: use DATABASE_URL / REDIS_URL from the environment when set, else embedded ones.
    database_url: str | None = None
    redis_url: str | None = None
    use_env_services: bool = True
    worker_concurrency: int = 4
    flower: bool = False
    backfill_days: int = 30
    extra_env: dict[str, str] = field(default_factory=dict)


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.procs: list[Proc] = []
        self.env: dict[str, str] = {}
        self.api_url = ""
        self.flower_url = ""
        self.admin_key = "ai_admin_demo_" + secrets.token_hex(16)
        self.flower_user = "demo"
        self.flower_password = secrets.token_urlsafe(12)
        self.database_url = ""
        self.redis_url = ""
        self.embedded_redis = False
        self.embedded_db = False
        self.logs = config.data_dir / "logs"

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def prepare(self) -> None:
        """A fresh data directory, the database URL and Redis (embedded unless given)."""
        cfg = self.config
        if cfg.data_dir.exists():
            shutil.rmtree(cfg.data_dir)
        self.logs.mkdir(parents=True)
        env_db = os.environ.get("DATABASE_URL") if cfg.use_env_services else None
        env_redis = os.environ.get("REDIS_URL") if cfg.use_env_services else None
        self.database_url = cfg.database_url or env_db or ""
        if not self.database_url:
            self.embedded_db = True
            self.database_url = f"sqlite:///{cfg.data_dir / 'activity-insights.sqlite3'}"
        self.redis_url = cfg.redis_url or env_redis or ""
        if not self.redis_url:
            self.embedded_redis = True
            self.redis_url = self._start_embedded_redis()
        self._check_redis()

    def _start_embedded_redis(self) -> str:
        log_path = self.logs / "redis.log"
        log_file = log_path.open("wb")
        popen = subprocess.Popen(
            [sys.executable, "-m", "demo.embedded_redis", "0"],
            stdout=subprocess.PIPE, stderr=log_file, cwd=ROOT, start_new_session=True,
        )
        self.procs.append(Proc("redis", popen, log_path, log_file))
        assert popen.stdout is not None
        line = popen.stdout.readline().decode().strip()
        if not line.startswith("READY "):
            raise StackError(f"the embedded Redis did not start (see {log_path})")
        return f"redis://127.0.0.1:{int(line.split()[1])}/0"

    def _check_redis(self) -> None:
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=3)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise StackError(f"cannot reach Redis at {self.redis_url}: {exc}") from None
        finally:
            client.close()

    def migrate(self) -> None:
        try:
            migrations.upgrade(self.database_url)
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StackError(f"cannot migrate the database: {reason}") from None

    def settings_env(self, zoom_oauth_url: str, zoom_api_url: str) -> dict[str, str]:
        """The environment every process of the demo gets: nothing from the caller's AI_*."""
        env = {
            k: v for k, v in os.environ.items()
            if not (k.startswith(("AI_", "FLOWER_")) or k in {"DATABASE_URL", "REDIS_URL"})
        }
        env.update({
            "AI_DATABASE_URL": self.database_url,
            "AI_REDIS_URL": self.redis_url,
            "AI_BROKER_URL": "",
            "AI_RESULT_BACKEND": "",
            "AI_ZOOM_OAUTH_URL": zoom_oauth_url,
            "AI_ZOOM_API_URL": zoom_api_url,
            "AI_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "AI_ADMIN_API_KEY": self.admin_key,
            "AI_FLOWER_USER": self.flower_user,
            "AI_FLOWER_PASSWORD": self.flower_password,
            "AI_ACTIVITY_BACKFILL_DAYS": str(self.config.backfill_days),
            "AI_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.config.extra_env)
        self.env = env
        return env

    def _settings(self) -> Settings:
        # The launchers read a few settings (log level, Flower auth): build them from our env,
        # not from the caller's.
        keep = {k: v for k, v in self.env.items() if k.startswith("AI_")}
        saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AI_")}
        try:
            os.environ.update(keep)
            return Settings()
        finally:
            for k in keep:
                os.environ.pop(k, None)
            os.environ.update(saved)

    def spawn(self, name: str, launch: launchers.Launch) -> Proc:
        log_path = self.logs / f"{name}.log"
        log_file = log_path.open("wb")
        env = dict(self.env)
        env.update(launch.env)
        popen = subprocess.Popen(
            launch.argv, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        proc = Proc(name, popen, log_path, log_file)
        self.procs.append(proc)
        return proc

    def start_services(self) -> None:
        settings = self._settings()
        # Gossip and mingle only matter between long-lived workers on many hosts; without them
        # a worker is ready in about a second.
        quick = ("--without-gossip", "--without-mingle")
        self.spawn("worker-tests", launchers.worker_command(
            settings, ["connection_tests"], 1, "tests", extra=quick))
        self.spawn("worker-sync", launchers.worker_command(
            settings, ["aggregation", "activity", "scheduling", "webhooks"],
            self.config.worker_concurrency, "sync", extra=quick))
        self.spawn("beat", launchers.beat_command(
            settings, str(self.config.data_dir / "beat-schedule")))
        api_port = free_port()
        self.spawn("api", launchers.api_command(settings, "127.0.0.1", api_port))
        self.api_url = f"http://127.0.0.1:{api_port}"
        if self.config.flower:
            flower_port = free_port()
            self.spawn("flower", launchers.flower_command(
                settings, host="127.0.0.1", port=flower_port,
                persistent_db=str(self.config.data_dir / "flower.db")))
            self.flower_url = f"http://127.0.0.1:{flower_port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        """API answering /healthz and both workers logged `ready`."""
        deadline = time.monotonic() + timeout
        pending = {p.name for p in self.procs if p.name.startswith("worker-")} | {"api"}
        if self.config.flower:
            pending.add("flower")
        while pending:
            for proc in self.procs:
                if not proc.alive():
                    raise StackError(
                        f"{proc.name} exited with {proc.popen.returncode} "
                        f"(log: {proc.log_path}):\n{proc.tail()}"
                    )
            for name in list(pending):
                if self._is_ready(name):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                names = ", ".join(sorted(pending))
                raise StackError(f"{names} not ready after {timeout:.0f}s (logs in {self.logs})")
            time.sleep(0.1)

    def _is_ready(self, name: str) -> bool:
        proc = next(p for p in self.procs if p.name == name)
        if name.startswith("worker-"):
            return b" ready." in proc.log_path.read_bytes()
        url = self.api_url + "/healthz" if name == "api" else self.flower_url + "/healthcheck"
        auth = (self.flower_user, self.flower_password) if name == "flower" else None
        try:
            return httpx.get(url, timeout=1.0, auth=auth).status_code == 200
        except httpx.HTTPError:
            return False

    def check_alive(self) -> None:
        for proc in self.procs:
            if not proc.alive():
                raise StackError(
                    f"{proc.name} exited with {proc.popen.returncode} (log: {proc.log_path}):\n"
                    f"{proc.tail()}"
                )

    def stop(self, timeout: float = 15.0) -> None:
        """Stop everything; Redis last, so workers finish their shutdown against a live broker."""
        services = [p for p in self.procs if p.name != "redis"]
        self._terminate(services, timeout)
        self._terminate([p for p in self.procs if p.name == "redis"], 5.0)
        self.procs.clear()

    @staticmethod
    def _terminate(procs: list[Proc], timeout: float) -> None:
        for proc in procs:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(5)
            # Prefork children orphaned by a killed parent are still in its process group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
            if proc.popen.stdout is not None:
                proc.popen.stdout.close()
            proc.log_file.close()
