"""Plumbing shared by every figure: services, fakezoom, worker processes, statistics, output.

The bench gets its own Postgres database (created, migrated, dropped at the end) and its own
Redis database number (``AI_BENCH_REDIS_DB``, default 14; the application uses 0 and the test
suite 13), found the way the test suite finds them (``tests/services.py``). Settings are exported
as environment variables before any application module reads them, so spawned worker processes
see the same services.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import multiprocessing as mp
import os
import platform
import queue
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from fakezoom.server import FakeZoomURLs
from worker.kit.net import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS_PATH = ROOT / "bench" / "results.json"
BENCH_REDIS_DB = int(os.environ.get("AI_BENCH_REDIS_DB", "14"))
# Marks the bench Redis DB as in use by a live run (value: its pid).
_OWNER_KEY = "ai:bench:owner"

log = logging.getLogger("bench")

T = TypeVar("T")


# ----------------------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def median_by(items: Sequence[T], key: Callable[[T], float]) -> T:
    """The item of the median ``key`` (the upper one of an even count): a whole run's figures
    stay together."""
    return sorted(items, key=key)[len(items) // 2]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of unsorted values."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0 or math.isnan(num) or math.isnan(den):
        return None
    return num / den


# ----------------------------------------------------------------------------- figures


@dataclass
class Metric:
    """One line of the table. ``value`` is a ratio or a count, never a bare duration: durations
    live in the figure's ``raw`` for the record."""

    name: str
    value: float | None
    ideal: str
    baseline: str = ""
    unit: str = "x"  # "x": ratio to the baseline; "n": a count; "%": share
    note: str = ""

    def shown(self) -> str:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return "n/a"
        if self.unit == "n":
            v = self.value
            return f"{int(v)}" if float(v).is_integer() else f"{v:.2f}"
        if self.unit == "%":
            return f"{self.value:.1f}%"
        return f"{self.value:.2f}x" if abs(self.value) < 100 else f"{self.value:.0f}x"


@dataclass
class Figure:
    key: str
    title: str
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def add(self, name: str, value: float | None, ideal: str, baseline: str = "",
            unit: str = "x", note: str = "") -> Metric:
        metric = Metric(name, value, ideal, baseline, unit, note)
        self.metrics.append(metric)
        return metric

    def well_formed(self) -> bool:
        """What the smoke test checks: a figure with metrics whose values are numbers or None."""
        return bool(self.metrics) and all(
            isinstance(m.name, str) and (m.value is None or isinstance(m.value, int | float))
            for m in self.metrics
        )


def format_table(figures: Sequence[Figure]) -> str:
    headers = ("figure", "metric", "value", "ideal", "divided by")
    rows: list[tuple[str, ...]] = []
    for fig in figures:
        if fig.error:
            last = [line for line in fig.error.splitlines() if line.strip()][-1:] or ["?"]
            rows.append((fig.key, "ERROR", last[0][:60], "", ""))
        for i, m in enumerate(fig.metrics):
            rows.append((fig.key if i == 0 else "", m.name, m.shown(), m.ideal, m.baseline))
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    widths[-1] = min(widths[-1], 60)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i != 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    for n, r in enumerate(rows):
        if r[0] and n > 0:
            out.append("")
        out.append(line(r))
    return "\n".join(out)


def machine_info(env: BenchEnv | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(Exception):
        import psutil

        info["memory_total_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    with contextlib.suppress(Exception):
        info["free_h"] = subprocess.run(["free", "-h"], capture_output=True, text=True,
                                        timeout=5).stdout.strip()
    if env is not None:
        with contextlib.suppress(Exception):
            from sqlalchemy import text

            with env.engine.connect() as conn:
                info["postgres"] = conn.execute(text("SHOW server_version")).scalar()
        with contextlib.suppress(Exception):
            info["redis"] = env.redis.info("server")["redis_version"]
    return info


def write_results(figures: Sequence[Figure], machine: dict[str, Any], *, quick: bool,
                  path: Path = RESULTS_PATH) -> Path:
    body = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine,
        "figures": [dataclasses.asdict(f) for f in figures],
    }
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
    return path


# ----------------------------------------------------------------------------- services


def quiet_logging() -> None:
    """Workers log a warning per 429 and retry; the fake's counters are what we report."""
    logging.basicConfig(level=logging.ERROR, format="%(processName)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.ERROR)


class BenchEnv:
    """Postgres database and Redis DB of this bench run, and the settings that point at them."""

    def __init__(self, *, quick: bool = False, repeats: int | None = None,
                 full: bool = False) -> None:
        self.quick = quick
        # The largest sizes even where they take long on this machine.
        self.full = full
        self.repeats = repeats if repeats is not None else (1 if quick else 3)
        self.db_url = ""
        self.redis_url = ""
        self._services: Any = None
        self._server_url = ""

    def __enter__(self) -> BenchEnv:
        from cryptography.fernet import Fernet
        from sqlalchemy.engine import make_url

        from tests.services import discover

        self._services = discover()
        self._server_url = self._services.postgres_url
        name = f"ai_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self.db_url = make_url(self._server_url).set(database=name).render_as_string(
            hide_password=False)
        self.redis_url = f"{self._services.redis_url}/{BENCH_REDIS_DB}"
        os.environ.update({
            "AI_DATABASE_URL": self.db_url,
            "AI_REDIS_URL": self.redis_url,
            "AI_BROKER_URL": self.redis_url,
            "AI_RESULT_BACKEND": self.redis_url,
            "AI_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "AI_ADMIN_API_KEY": "ai_admin_" + secrets.token_hex(16),
            "AI_LOG_LEVEL": "ERROR",
        })
        try:
            self._admin(f'CREATE DATABASE "{name}"')
            from worker import migrate

            migrate.upgrade(self.db_url)
            self.refresh_settings()
            self._claim_redis_db()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy.engine import make_url

        with contextlib.suppress(Exception):
            from worker.db import dispose_engines

            dispose_engines()
        with contextlib.suppress(Exception):
            self.redis.flushdb()
        if self.db_url and not os.environ.get("AI_KEEP_BENCH_DB"):
            with contextlib.suppress(Exception):
                name = make_url(self.db_url).database
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if self._services is not None:
            self._services.close()
            self._services = None

    def _claim_redis_db(self) -> None:
        """Refuse to share the Redis DB with another live bench run: flushing it would take the
        other run's locks and leases (seen as a spurious LeaseLost)."""
        owner = self.redis.get(_OWNER_KEY)
        if owner is not None:
            pid = int(owner)
            alive = True
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                alive = False
            except PermissionError:
                pass
            if alive and pid != os.getpid():
                raise RuntimeError(
                    f"another bench run (pid {pid}) is using Redis DB {BENCH_REDIS_DB}; wait "
                    "for it or set AI_BENCH_REDIS_DB to a free database number")
        self.flush_redis()

    def _admin(self, sql: str) -> None:
        from sqlalchemy import create_engine, pool, text

        admin = create_engine(self._server_url, poolclass=pool.NullPool,
                              isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(sql))
        finally:
            admin.dispose()

    def refresh_settings(self) -> None:
        """Forget every per-process object built from settings (after changing the env)."""
        from worker.db import dispose_engines
        from worker.kit.redis import reset_redis
        from worker.settings import get_settings

        get_settings.cache_clear()
        dispose_engines()
        reset_redis()
        with contextlib.suppress(ImportError):
            from worker import clients

            clients.reset()

    def set_env(self, **values: str) -> None:
        os.environ.update({k: str(v) for k, v in values.items()})
        self.refresh_settings()

    def point_at(self, fake: FakeZoomProcess, **extra: str) -> None:
        self.set_env(AI_ZOOM_OAUTH_URL=fake.oauth_token_url, AI_ZOOM_API_URL=fake.api_url,
                     **extra)

    @property
    def engine(self) -> Any:
        from worker.db import get_engine

        return get_engine(self.db_url)

    @property
    def redis(self) -> Any:
        from worker.kit.redis import get_redis

        return get_redis()

    def reset_data(self) -> None:
        """Empty every table and the bench Redis DB: each figure starts cold."""
        from sqlalchemy import text
        from sqlmodel import SQLModel

        import worker.models  # noqa: F401

        names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
        with self.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        self.flush_redis()
        self.refresh_settings()

    def flush_redis(self) -> None:
        """Empty the bench's Redis DB, keeping the mark that it is in use."""
        self.redis.flushdb()
        self.redis.set(_OWNER_KEY, os.getpid())


class FakeZoomProcess(FakeZoomURLs):
    """fakezoom in its own process (``python -m fakezoom``), so its CPU and GIL are not the
    bench's or the workers'. Talks to it over its HTTP admin API."""

    def __init__(self, config: Any, *, startup_timeout: float = 120.0) -> None:
        self.config = config
        self.startup_timeout = startup_timeout
        self.port = 0
        self.info: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir = ""
        self._http: httpx.Client | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def accounts(self) -> list[dict[str, Any]]:
        return list(self.info["accounts"])

    def start(self) -> FakeZoomProcess:
        self._dir = tempfile.mkdtemp(prefix="ai-bench-fz-")
        cfg_path = Path(self._dir, "config.json")
        out_path = Path(self._dir, "credentials.json")
        raw = self.config.to_dict() if hasattr(self.config, "to_dict") else dict(self.config)
        cfg_path.write_text(json.dumps(raw))
        self.port = free_port()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "fakezoom", "--port", str(self.port), "--config",
             str(cfg_path), "--json-out", str(out_path)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self.startup_timeout
        self._http = httpx.Client(base_url=self.base_url, timeout=60)
        while True:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise RuntimeError(f"fakezoom exited: {err[-2000:]}")
            if out_path.exists():
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    self.info = json.loads(out_path.read_text())
                    self._http.get("/_fake/stats").raise_for_status()
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("fakezoom did not start in time")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> FakeZoomProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self._http is not None, "fakezoom is not running"
        r = self._http.request(method, path, json=body)
        r.raise_for_status()
        return r.json()

    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_fake/stats"))

    def reset_stats(self) -> None:
        self._call("POST", "/_fake/reset_stats")

    def configure(self, **settings: Any) -> None:
        self._call("POST", "/_fake/config", settings)

    def reset_rate_limits(self) -> None:
        self._call("POST", "/_fake/rate_limits/reset")

    def truth(self, what: str, account: int = 0, **params: str) -> Any:
        assert self._http is not None
        r = self._http.get(f"/_fake/accounts/{account}/truth/{what}", params=params)
        r.raise_for_status()
        return r.json()


def s2s_credentials(account: dict[str, Any]) -> dict[str, str]:
    app = next(a for a in account["apps"] if a["kind"] == "s2s")
    return {"client_id": app["client_id"], "client_secret": app["client_secret"],
            "account_id": app["account_id"]}


def bare_source(session: Any, tenant_name: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A tenant with one source and no credentials, flushed in ``session``: for figures that
    read stored rows and never call Zoom. Returns (tenant id, source id)."""
    from worker.models import Source, Tenant

    tenant = Tenant(name=tenant_name)
    session.add(tenant)
    session.flush()
    source = Source(tenant_id=tenant.id, name="zoom")
    session.add(source)
    session.flush()
    return tenant.id, source.id


def create_sources(engine: Any, accounts: Sequence[dict[str, Any]], *,
                   rate_share: float | None = None, tenant_name: str | None = None,
                   **fields: Any) -> list[uuid.UUID]:
    """One tenant and one active S2S source per fakezoom account; returns the source ids."""
    from sqlmodel import Session

    from worker.kit.crypto import encrypt_json
    from worker.models import GrantType, Source, SourceStatus, Tenant

    with Session(engine) as session:
        tenant = Tenant(name=tenant_name or f"bench-{secrets.token_hex(4)}")
        session.add(tenant)
        session.flush()
        ids = []
        for i, acc in enumerate(accounts):
            creds = s2s_credentials(acc)
            source = Source(
                tenant_id=tenant.id, name=f"zoom-{i}", grant_type=GrantType.ACCOUNT_CREDENTIALS,
                credentials_ciphertext=encrypt_json(creds), credentials_version=1,
                zoom_account_id=creds["account_id"], status=SourceStatus.ACTIVE,
                plan=acc.get("plan", "pro"), rate_share=rate_share, **fields,
            )
            session.add(source)
            ids.append(source.id)
        session.commit()
    return ids


def tenant_of(engine: Any, source_id: uuid.UUID) -> uuid.UUID:
    """The tenant of a source `create_sources` made."""
    from sqlalchemy import text

    with engine.connect() as conn:
        tenant: uuid.UUID = conn.execute(text("SELECT tenant_id FROM source WHERE id = :s"),
                                         {"s": source_id}).scalar_one()
    return tenant


@contextlib.contextmanager
def count_queries(engine: Any) -> Iterator[list[str]]:
    """Statements sent through SQLAlchemy while the block runs (COPY on the raw driver is not
    seen; nothing on the paths counted here uses it)."""
    from sqlalchemy import event

    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


# ----------------------------------------------------------------------------- processes


def peak_rss_bytes() -> int:
    """This process's peak resident set since its exec.

    Not ``getrusage``: Linux carries ``ru_maxrss`` across exec, so a spawned worker would report
    the size of the bench process it was forked from. ``VmHWM`` is the high-water mark of the
    current address space only."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads) from ``/proc/<pid>/stat``;
    ``None``: this process. A process on another host (or gone) counts 0."""
    path = f"/proc/{pid or 'self'}/stat"
    try:
        with open(path) as stat:
            # Fields after the command name (which may hold spaces): utime, stime are 14, 15.
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu(conn: Any) -> dict[int, float]:
    """CPU seconds so far of every Postgres backend connected to ``conn``'s database (the
    server runs on this machine: its processes are readable in /proc)."""
    from sqlalchemy import text

    pids = conn.execute(text("SELECT pid FROM pg_stat_activity "
                             "WHERE datname = current_database()")).scalars().all()
    return {int(p): cpu_seconds(int(p)) for p in pids}


def backend_cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU the backends used between two ``backend_cpu`` readings (new backends from 0)."""
    return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())


WaitStart = Callable[[], None]


def _child_main(target: Callable[[Any, WaitStart], Any], arg: Any, ready: Any, go: Any,
                results: Any, index: int) -> None:
    quiet_logging()
    signalled = False

    def wait_start() -> None:
        nonlocal signalled
        signalled = True
        ready.put(index)
        go.wait()

    try:
        value = target(arg, wait_start)
        results.put((index, {"ok": True, "value": value, "end": time.time(),
                             "peak_rss": peak_rss_bytes()}))
    except BaseException:
        if not signalled:
            ready.put(index)
        results.put((index, {"ok": False, "error": traceback.format_exc(), "end": time.time(),
                             "peak_rss": peak_rss_bytes()}))


@dataclass
class ProcessRun:
    wall: float  # seconds from the start signal to the last result
    results: list[dict[str, Any]]

    @property
    def values(self) -> list[Any]:
        return [r.get("value") for r in self.results]

    def raise_errors(self) -> None:
        errors = [r["error"] for r in self.results if not r.get("ok")]
        if errors:
            raise RuntimeError(f"{len(errors)} worker process(es) failed:\n{errors[0]}")


def run_processes(target: Callable[[Any, WaitStart], Any], args: Sequence[Any], *,
                  timeout: float = 600.0) -> ProcessRun:
    """Run ``target(arg, wait_start)`` in one spawned process per arg. Each target sets itself
    up, calls ``wait_start()`` and then does the measured work; the clock starts when every
    process is ready, so interpreter start-up and imports are not measured."""
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_child_main, args=(target, a, ready, go, results, i),
                         name=f"bench-worker-{i}", daemon=True) for i, a in enumerate(args)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    try:
        for _ in procs:
            ready.get(timeout=max(1.0, deadline - time.monotonic()))
        start = time.time()
        go.set()
        collected: dict[int, dict[str, Any]] = {}
        while len(collected) < len(procs):
            try:
                index, result = results.get(timeout=1.0)
            except queue.Empty:
                index, result = -1, {}
            if index < 0:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"worker processes still running after {timeout:.0f}s")
                dead = [p for i, p in enumerate(procs) if i not in collected
                        and not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    raise RuntimeError(f"{dead[0].name} died with exit code {dead[0].exitcode}")
                continue
            collected[index] = result
        end = max(r["end"] for r in collected.values())
        for p in procs:
            p.join(10)
        return ProcessRun(end - start, [collected[i] for i in range(len(procs))])
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value
