"""Command lines of the long-running processes: worker, beat, API and Flower.

Built as plain argv lists (the demo, compose and the tests use the same builders) and run with
`exec`, so in a container the process gets signals directly and its exit code is the service's.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from worker.cli.errors import CliError
from worker.queues import Queue
from worker.settings import Settings

# The Celery app with every task registered: `worker/tasks.py` imports every domain's tasks.
CELERY_APP = "worker.tasks"
ALL_QUEUES = tuple(str(q) for q in Queue)


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to the inherited environment


def default_concurrency(queues: Sequence[str]) -> int:
    """Tasks wait on Zoom and the database far more than they compute, and the shared rate
    limiter (not the pool size) bounds the load on Zoom: two processes per CPU, capped so a big
    machine does not open more database connections than Postgres allows by default.
    A connection-tests-only worker needs few: each test is one token and one call."""
    if set(queues) == {str(Queue.CONNECTION_TESTS)}:
        return 2
    return max(2, min(8, 2 * (os.cpu_count() or 1)))


def parse_queues(value: str) -> list[str]:
    names = [q.strip() for q in value.split(",") if q.strip()]
    unknown = [q for q in names if q not in ALL_QUEUES]
    if unknown or not names:
        raise CliError(
            f"unknown queue(s) {', '.join(unknown) or '(none)'}: "
            f"choose from {', '.join(ALL_QUEUES)}"
        )
    return names


def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", CELERY_APP, *args]


def worker_command(
    settings: Settings,
    queues: Sequence[str],
    concurrency: int | None = None,
    name: str | None = None,
    loglevel: str | None = None,
    extra: Sequence[str] = (),
) -> Launch:
    concurrency = concurrency or default_concurrency(queues)
    if concurrency < 1:
        raise CliError("--concurrency must be at least 1")
    node = name or ("+".join(sorted(queues)) if len(queues) < len(ALL_QUEUES) else "all")
    argv = _celery(
        "worker",
        "--queues",
        ",".join(queues),
        "--concurrency",
        str(concurrency),
        "--pool",
        "prefork",
        # Task events on: Flower shows every task (the app also sets worker_send_task_events).
        "--task-events",
        "--hostname",
        f"{node}@%h",
        "--loglevel",
        (loglevel or settings.log_level).upper(),
        *extra,
    )
    return Launch(argv)


def beat_command(
    settings: Settings, schedule_file: str | None = None, loglevel: str | None = None
) -> Launch:
    # Schedules live in Postgres (beat only ticks the dispatcher), so this file holds nothing
    # that matters: a temp path keeps beat working in a read-only container.
    schedule = schedule_file or os.path.join(tempfile.gettempdir(), "activity-insights-beat")
    level = (loglevel or settings.log_level).upper()
    return Launch(_celery("beat", "--schedule", schedule, "--loglevel", level))


# httptools' parser and uvloop's loop (runtime dependencies), named rather than uvicorn's "auto",
# which falls back to pure-Python h11 and asyncio's loop without a word: a missing one stops the
# API at start instead of silently halving what it serves (bench/RESULTS.md). uvloop has no
# Windows build.
API_SERVER_OPTIONS = (
    "--http", "httptools", "--loop", "asyncio" if sys.platform == "win32" else "uvloop",
)


def api_command(
    settings: Settings, host: str = "0.0.0.0", port: int = 8000, workers: int = 1,
    reload: bool = False,
) -> Launch:
    argv = [
        sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory",
        "--host", host, "--port", str(port), *API_SERVER_OPTIONS,
        # Behind a load balancer the client address comes from X-Forwarded-For.
        "--proxy-headers",
        "--log-level", settings.log_level.lower(),
    ]
    if reload:
        argv.append("--reload")
    elif workers > 1:
        argv += ["--workers", str(workers)]
    return Launch(argv)


def flower_command(
    settings: Settings,
    *,
    host: str | None = None,
    port: int = 5555,
    local: bool = False,
    persistent_db: str | None = None,
    url_prefix: str | None = None,
) -> Launch:
    """Flower with basic auth from settings. Without credentials it only starts with
    ``local=True``, and then only listens on loopback."""
    env: dict[str, str] = {}
    has_auth = bool(settings.flower_user.strip() and settings.flower_password.strip())
    if has_auth:
        settings.require("flower_user", "flower_password")
        # Through the environment, not argv: argv is readable by every user of the machine.
        env["FLOWER_BASIC_AUTH"] = f"{settings.flower_user}:{settings.flower_password}"
    elif not local:
        raise CliError(
            "Flower shows every tenant's tasks: set AI_FLOWER_USER and AI_FLOWER_PASSWORD, "
            "or pass --local to run it without auth on 127.0.0.1"
        )
    address = host or ("127.0.0.1" if local and not has_auth else "0.0.0.0")
    # Through our wrapper, so that Flower's /metrics needs the basic auth too (flower.py).
    argv = [sys.executable, "-m", "worker.cli.flower", "-A", CELERY_APP, "flower",
            f"--address={address}", f"--port={port}", "--enable_events=True"]
    if persistent_db:
        argv += ["--persistent=True", f"--db={shelve_name(persistent_db)}",
                 "--state_save_interval=60000"]
    if url_prefix:
        argv.append(f"--url_prefix={url_prefix}")
    return Launch(argv, env)


def shelve_name(path: str) -> str:
    """The name to give ``shelve`` for the file ``path``: dbm.gnu writes the name as given,
    dbm.ndbm appends ``.db`` itself (``flower.db.db`` otherwise), dbm.dumb (the last resort)
    writes ``path.dat`` and ``path.dir``."""
    import importlib

    for module in ("dbm.gnu", "dbm.ndbm"):
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        return path if module == "dbm.gnu" else path.removesuffix(".db")
    return path


def exec_launch(launch: Launch, environ: Mapping[str, str] | None = None) -> None:
    """Replace this process with the launched one (never returns)."""
    env = dict(os.environ if environ is None else environ)
    env.update(launch.env)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(launch.argv[0], launch.argv, env)
