"""Figure 5: POST connection-test (auth, insert, commit, enqueue on the broker) against GET
/healthz of the same app, in the same run, under a loopback load generator.

The app runs as in production (``uvicorn --factory`` with the launcher's httptools and uvloop,
one worker process) except that the per-key flood guard's limit is raised: it still counts every
request in Redis, but a load generator on one key would otherwise measure 429s. The generator
is plain asyncio over keep-alive sockets (a few microseconds per request, so it is not the
bottleneck the way an HTTP client library would be on two cores): C connections in a closed
loop for D seconds per endpoint, endpoints alternating, medians over repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from typing import Any

import httpx

from bench.harness import ROOT, BenchEnv, Figure, median, percentile, ratio
from worker.cli.launch import API_SERVER_OPTIONS
from worker.kit.net import free_port

CONCURRENCY = 16
_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


def make_app() -> Any:
    """``uvicorn --factory bench.api:make_app``: the production app with the flood guard's limit
    out of the way (it still does its Redis INCR per request)."""
    from api.main import create_app
    from api.ratelimit import RateLimit

    return create_app(rate_limit=RateLimit(limit=10**9))


def _seed(env: BenchEnv) -> tuple[uuid.UUID, str]:
    from sqlmodel import Session

    from worker.kit.apikeys import display_prefix, generate_key, hash_key
    from worker.kit.crypto import encrypt_json
    from worker.models import ApiKey, Source, SourceStatus, Tenant

    key = generate_key()
    with Session(env.engine) as session:
        tenant = Tenant(name=f"bench-api-{secrets.token_hex(3)}")
        session.add(tenant)
        session.flush()
        session.add(ApiKey(tenant_id=tenant.id, name="bench", prefix=display_prefix(key),
                           key_hash=hash_key(key)))
        source = Source(tenant_id=tenant.id, name="zoom", status=SourceStatus.ACTIVE,
                        credentials_ciphertext=encrypt_json(
                            {"client_id": "c", "client_secret": "s", "account_id": "a"}),
                        credentials_version=1, zoom_account_id="a")
        session.add(source)
        session.commit()
        return source.id, key


async def _connection(port: int, request: bytes, deadline: float, latencies: list[float],
                      statuses: Counter[int]) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.perf_counter() < deadline:
        if writer is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert reader is not None
        t0 = time.perf_counter()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = _CONTENT_LENGTH.search(head)
            if match:
                await reader.readexactly(int(match.group(1)))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            reader = writer = None
            statuses[0] += 1
            continue
        latencies.append(time.perf_counter() - t0)
        statuses[int(head[9:12])] += 1
        if b"connection: close" in head.lower():
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def load(port: int, request: bytes, seconds: float, concurrency: int = CONCURRENCY
         ) -> dict[str, Any]:
    """Closed loop: ``concurrency`` keep-alive connections, each sending the next request as
    soon as the previous answer is read."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def main() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(_connection(port, request, deadline, latencies, statuses)
                               for _ in range(concurrency)))

    t0 = time.perf_counter()
    asyncio.run(main())
    wall = time.perf_counter() - t0
    return {"throughput": len(latencies) / wall, "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000, "requests": len(latencies),
            "statuses": dict(statuses)}


def _start_server(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.api:make_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), *API_SERVER_OPTIONS, "--log-level", "warning",
         "--no-access-log"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"the API did not start: {err[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the API did not start within 60 s")
        time.sleep(0.1)


def run(env: BenchEnv) -> Figure:
    fig = Figure("api", "API: connection-test enqueue against /healthz")
    source_id, key = _seed(env)
    seconds = 2.0 if env.quick else 5.0
    port = free_port()
    host = f"Host: 127.0.0.1:{port}\r\n".encode()
    health = b"GET /healthz HTTP/1.1\r\n" + host + b"\r\n"
    post = (f"POST /v1/sources/{source_id}/connection-tests HTTP/1.1\r\n".encode() + host
            + f"Authorization: Bearer {key}\r\nContent-Length: 0\r\n\r\n".encode())
    proc = _start_server(port)
    try:
        load(port, health, 0.5)  # warm-up: imports, pools, first connections
        load(port, post, 0.5)
        series: dict[str, list[dict[str, Any]]] = {"healthz": [], "post": [], "healthz1": [],
                                                   "post1": []}
        for _ in range(env.repeats):
            series["healthz"].append(load(port, health, seconds))
            series["post"].append(load(port, post, seconds))
            # One connection: the latency of a request that waits for no other.
            series["healthz1"].append(load(port, health, seconds / 2, concurrency=1))
            series["post1"].append(load(port, post, seconds / 2, concurrency=1))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()

    def med(name: str, field: str) -> float:
        return median([r[field] for r in series[name]])

    fig.add("POST connection-test throughput", ratio(med("post", "throughput"),
                                                      med("healthz", "throughput")),
            "as close to 1 as the work allows", f"GET /healthz req/s, {CONCURRENCY} conns")
    fig.add("POST connection-test p99 latency", ratio(med("post", "p99_ms"),
                                                       med("healthz", "p99_ms")),
            "small (answers in ms)", f"GET /healthz p99, {CONCURRENCY} conns")
    fig.add("... p99 latency, unloaded", ratio(med("post1", "p99_ms"), med("healthz1", "p99_ms")),
            "small", "GET /healthz p99, 1 connection")
    bad = {name: sum(n for r in runs for s, n in r["statuses"].items() if not 200 <= s < 300)
           for name, runs in series.items()}
    fig.add("non-2xx answers", bad["post"] + bad["healthz"], "0", "all requests", unit="n")
    fig.raw.update(
        concurrency=CONCURRENCY, seconds_per_series=seconds,
        **{name: {k: round(med(name, k), 2) for k in ("throughput", "p50_ms", "p99_ms")}
           for name in series},
        statuses={name: [r["statuses"] for r in runs] for name, runs in series.items()},
    )
    return fig
