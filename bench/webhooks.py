"""Figure: Zoom webhooks. Event-to-insight latency (a signed `user.signed_in` POSTed to the
API until `GET /v1/insights/accounts/{id}` shows it as the account's last activity) with one
API process and a `celery worker` (2 children) on the `webhooks` queue, on loopback; and the
API's webhook intake (verify, insert into the inbox, commit, answer, send the task) against
GET /healthz of the same app in the same run.

Latency: one event at a time, polled every 10 ms, each a new sign-in time for one of the seeded
accounts. Intake: every request a distinct event (the same body twice would take the inbox's
"already stored" path), built and signed before the clock starts; the worker is stopped during
intake so the figure is the API's alone (the inbox and the queue absorb the backlog).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.api import _CONTENT_LENGTH, CONCURRENCY, _start_server, load
from bench.harness import ROOT, BenchEnv, Figure, median, percentile, ratio
from worker.kit.net import free_port

SECRET = "bench-webhook-secret"
TARGET_P99_SECONDS = 2.0
TARGET_INTAKE = 500.0  # events/s, the target on these 2 cores
USERS = 20


def _seed(env: BenchEnv) -> tuple[uuid.UUID, str, list[tuple[int, str]]]:
    from sqlmodel import Session

    from worker.kit.apikeys import display_prefix, generate_key, hash_key
    from worker.kit.crypto import encrypt_json
    from worker.models import ApiKey, Source, SourceStatus, Tenant, ZoomUser

    key = generate_key()
    with Session(env.engine) as session:
        tenant = Tenant(name=f"bench-webhooks-{secrets.token_hex(3)}")
        session.add(tenant)
        session.flush()
        session.add(ApiKey(tenant_id=tenant.id, name="bench", prefix=display_prefix(key),
                           key_hash=hash_key(key)))
        source = Source(tenant_id=tenant.id, name="zoom", status=SourceStatus.ACTIVE,
                        credentials_ciphertext=encrypt_json(
                            {"client_id": "c", "client_secret": "s", "account_id": "a",
                             "webhook_secret_token": SECRET}),
                        credentials_version=1, zoom_account_id="a")
        session.add(source)
        session.flush()
        users = [ZoomUser(tenant_id=tenant.id, source_id=source.id, zoom_id=f"u{n}",
                          email=f"user{n}@bench.example", status="active")
                 for n in range(USERS)]
        session.add_all(users)
        session.commit()
        return source.id, key, [(int(u.id or 0), u.email) for u in users]


def _signed(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"x-zm-request-timestamp": ts, "x-zm-signature": f"v0={mac}",
            "content-type": "application/json"}


def _sign_in(email: str, when: int, n: int) -> bytes:
    at = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"event": "user.signed_in", "event_ts": when * 1000 + n % 1000,
                       "payload": {"account_id": "a", "object": {
                           "id": f"z{n}", "email": email, "date_time": at,
                           "client_type": "mac", "version": "6.1.1", "login_type": 0}}}
                      ).encode()


def _start_worker() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.tasks", "worker", "-P", "prefork",
         "-c", "2", "-Q", "webhooks", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-l", "warning", "-n", f"bench-wh-{uuid.uuid4().hex[:6]}@%h"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(5)


def latency(api: str, source_id: uuid.UUID, key: str, users: list[tuple[int, str]],
            events: int) -> list[float]:
    """Seconds from each POST to the insight showing that sign-in as last activity."""
    out: list[float] = []
    base = int(time.time()) - 3600
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=10) as client:
        for n in range(events):
            account_id, email = users[n % len(users)]
            when = base + n
            body = _sign_in(email, when, n)
            want = datetime.fromtimestamp(when, UTC)
            t0 = time.perf_counter()
            answer = client.post(f"{api}/v1/webhooks/zoom/{source_id}", content=body,
                                 headers=_signed(body))
            answer.raise_for_status()
            deadline = t0 + 30
            while True:
                got = client.get(f"{api}/v1/insights/accounts/{account_id}",
                                 headers=headers).json()
                last = got["activity"]["last_activity_at"]
                if last and datetime.fromisoformat(last) >= want:
                    out.append(time.perf_counter() - t0)
                    break
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"event {n} not visible within 30 s")
                time.sleep(0.01)
    return out


async def _intake_connection(port: int, requests: list[bytes], deadline: float,
                             latencies: list[float], statuses: Counter[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while requests and time.perf_counter() < deadline:
            request = requests.pop()
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = _CONTENT_LENGTH.search(head)
            if match:
                await reader.readexactly(int(match.group(1)))
            latencies.append(time.perf_counter() - t0)
            statuses[int(head[9:12])] += 1
    finally:
        writer.close()


def intake(port: int, source_id: uuid.UUID, seconds: float, first: int) -> dict[str, Any]:
    """Closed loop like bench.api.load, each request a distinct signed event."""
    host = f"Host: 127.0.0.1:{port}\r\n".encode()
    requests = []
    for n in range(first, first + int(seconds * 3000)):  # more than one process can take
        body = _sign_in(f"load{n % 997}@bench.example", 1_700_000_000 + n, n)
        head = "".join(f"{k}: {v}\r\n" for k, v in _signed(body).items())
        requests.append(f"POST /v1/webhooks/zoom/{source_id} HTTP/1.1\r\n".encode() + host
                        + head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def main() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(_intake_connection(port, requests, deadline, latencies, statuses)
                               for _ in range(CONCURRENCY)))

    t0 = time.perf_counter()
    asyncio.run(main())
    wall = time.perf_counter() - t0
    return {"throughput": len(latencies) / wall, "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000, "requests": len(latencies),
            "statuses": dict(statuses)}


def run(env: BenchEnv) -> Figure:
    fig = Figure("webhooks", "Webhooks: event-to-insight latency, intake against /healthz")
    source_id, key, users = _seed(env)
    events = 20 if env.quick else 200
    seconds = 2.0 if env.quick else 5.0
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    health = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    proc = _start_server(port)
    worker = _start_worker()
    series: dict[str, list[dict[str, Any]]] = {"healthz": [], "intake": []}
    try:
        latency(api, source_id, key, users, 3)  # warm-up: worker children, pools, imports
        lat = latency(api, source_id, key, users, events)
        _stop(worker)
        load(port, health, 0.5)
        intake(port, source_id, 0.5, first=0)
        for r in range(env.repeats):
            series["healthz"].append(load(port, health, seconds))
            series["intake"].append(intake(port, source_id, seconds, first=(r + 1) * 10**6))
    finally:
        if worker.poll() is None:
            _stop(worker)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()

    def med(name: str, field: str) -> float:
        return median([r[field] for r in series[name]])

    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    fig.add("event-to-insight p50 latency", ratio(p50, TARGET_P99_SECONDS), "well under 1",
            "the 2 s target")
    fig.add("event-to-insight p99 latency", ratio(p99, TARGET_P99_SECONDS), "< 1",
            "the 2 s target")
    fig.add("webhook intake throughput", ratio(med("intake", "throughput"),
                                               med("healthz", "throughput")),
            "as close to 1 as the work allows", f"GET /healthz req/s, {CONCURRENCY} conns")
    fig.add("... against the issue's target", ratio(med("intake", "throughput"), TARGET_INTAKE),
            ">= 1", "500 events/s")
    bad = sum(n for runs in series.values() for r in runs for s, n in r["statuses"].items()
              if not 200 <= s < 300)
    fig.add("non-2xx answers", bad, "0", "all intake and /healthz requests", unit="n")
    fig.raw.update(
        latency_events=len(lat), latency_p50_ms=round(p50 * 1000, 1),
        latency_p99_ms=round(p99 * 1000, 1), latency_max_ms=round(max(lat) * 1000, 1),
        concurrency=CONCURRENCY, seconds_per_series=seconds,
        **{name: {k: round(med(name, k), 2) for k in ("throughput", "p50_ms", "p99_ms")}
           for name in series},
    )
    return fig
