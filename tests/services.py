"""Finding the real Postgres and Redis the tests run against.

Order: DATABASE_URL / REDIS_URL when set; else the local services on their standard ports; else
throwaway servers started from the installed binaries (removed at exit); else one line naming
what to install. Never a silent skip: the suite's real-service tests need real services.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from worker.kit.net import free_port


class ServiceUnavailable(RuntimeError):
    pass


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


@dataclass
class Services:
    postgres_url: str  # server URL (database part is replaced per run)
    redis_url: str  # base URL without db number
    _cleanups: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            cleanup()
        self._cleanups.clear()


def _throwaway_postgres(services: Services) -> str:
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        raise ServiceUnavailable(
            "PostgreSQL is not running on 127.0.0.1:5432 and no server binaries were found: "
            "install postgresql (apt-get install postgresql) or set DATABASE_URL"
        )
    workdir = tempfile.mkdtemp(prefix="ai-pg-")
    port = free_port()
    run_as: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(workdir, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(workdir, "data")
    subprocess.run([*run_as, initdb, "-D", data, "-U", "postgres", "-A", "trust"],
                   check=True, capture_output=True)
    subprocess.run(
        [*run_as, pg_ctl, "-D", data, "-l", os.path.join(workdir, "log"), "-w", "-o",
         f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
        check=True, capture_output=True,
    )

    def stop() -> None:
        subprocess.run([*run_as, pg_ctl, "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)

    services._cleanups.append(stop)
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"


def _throwaway_redis(services: Services) -> str:
    binary = shutil.which("redis-server")
    if not binary:
        raise ServiceUnavailable(
            "Redis is not running on 127.0.0.1:6379 and redis-server is not installed: "
            "install redis-server (apt-get install redis-server) or set REDIS_URL"
        )
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _answers("127.0.0.1", port):
        if time.monotonic() > deadline:
            proc.kill()
            raise ServiceUnavailable("a throwaway redis-server did not start")
        time.sleep(0.05)

    def stop() -> None:
        proc.terminate()
        proc.wait(10)

    services._cleanups.append(stop)
    return f"redis://127.0.0.1:{port}"


def discover() -> Services:
    services = Services(postgres_url="", redis_url="")
    try:
        pg = os.environ.get("DATABASE_URL") or os.environ.get("AI_TEST_DATABASE_URL")
        if pg:
            services.postgres_url = pg.replace("postgresql://", "postgresql+psycopg://", 1)
        elif _answers("127.0.0.1", 5432):
            services.postgres_url = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        else:
            services.postgres_url = _throwaway_postgres(services)

        redis = os.environ.get("REDIS_URL")
        if redis:
            parts = urlsplit(redis)
            services.redis_url = f"{parts.scheme}://{parts.netloc}"
        elif _answers("127.0.0.1", 6379):
            services.redis_url = "redis://127.0.0.1:6379"
        else:
            services.redis_url = _throwaway_redis(services)
    except BaseException:
        services.close()
        raise
    return services
