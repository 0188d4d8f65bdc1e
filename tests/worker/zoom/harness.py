"""Shared pieces of the multi-process tests: 'spawn' worker processes' entry points, a Redis
start barrier, the fake's token counters and a secret-catching log handler.

Child-process entry points live here (not in test modules) so that spawned interpreters import
them without importing pytest fixtures.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from fakezoom.server import FakeZoomServer

BARRIER_TIMEOUT = 60.0


# -- parent side -------------------------------------------------------------------------

def token_requests(server: FakeZoomServer, client_id: str | None = None) -> dict[str, int]:
    """Token requests by status (all apps, or one app)."""
    stats = server.fake.stats()["token_requests"]
    out: dict[str, int] = {}
    for cid, entry in stats.items():
        if client_id is None or cid == client_id:
            for status, n in entry["statuses"].items():
                out[status] = out.get(status, 0) + n
    return out


def known_secrets(server: FakeZoomServer) -> set[str]:
    fake = server.fake
    with fake.lock:
        found = {a.client_secret for a in fake.apps.values()}
        found |= {a.refresh_token for a in fake.apps.values() if a.refresh_token}
        found |= set(fake.tokens)
    return found


class CollectingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken format string is still worth scanning
            text = f"{record.msg} {record.args}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r} {record.exc_info[1]}"
        self.texts.append(f"{record.name}: {text}")


@contextmanager
def catching_logs() -> Iterator[CollectingHandler]:
    root = logging.getLogger()
    handler = CollectingHandler()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def assert_no_secret_logged(handler: CollectingHandler, secrets: set[str]) -> None:
    leaks = [(s[:6], t[:120]) for t in handler.texts for s in secrets if s and s in t]
    assert not leaks, f"secrets in log records: {leaks[:3]}"


# -- child side --------------------------------------------------------------------------

def redis_barrier(name: str, parties: int) -> None:
    """All `parties` processes return from here within a few milliseconds of each other."""
    client = redis.Redis.from_url(os.environ["AI_REDIS_URL"])
    client.incr(name)
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while int(client.get(name) or 0) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError("barrier")
        time.sleep(0.002)
    client.close()


def warm_up() -> int:
    """Import everything and open pools before the timed part of a test."""
    from worker import clients

    clients.get_token_cache()
    return os.getpid()


def stampede_child(barrier: str, parties: int, source_ids: list[str], threads: int
                   ) -> list[tuple[str, str]]:
    """`threads` threads each ask for the token of every source, all at the same moment."""
    from worker import clients

    results: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def run(offset: int) -> None:
        start.wait()
        order = source_ids[offset % len(source_ids):] + source_ids[:offset % len(source_ids)]
        for sid in order:
            token = clients.token_for_source(uuid.UUID(sid))
            with lock:
                results.append((sid, token.access_token))

    redis_barrier(barrier, parties)
    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return results


def rotation_child(source_id: str, counter: str, target: int) -> int:
    """Force refreshes (invalidate the current token) until `target` succeeded overall."""
    from worker import clients

    cache = clients.get_token_cache()
    client = redis.Redis.from_url(os.environ["AI_REDIS_URL"])
    done = 0
    for _ in range(target * 4):
        if int(client.get(counter) or 0) >= target:
            break
        token = cache.get_token(source_id)
        if cache.invalidate(source_id, token):
            client.incr(counter)
            done += 1
    cache.get_token(source_id)
    client.close()
    return done


def crash_child(source_id: str, point: str, lease: float | None = None) -> None:
    """Refresh the source's token and die by SIGKILL at `point`."""
    from worker import clients
    from worker.tokens import faults

    faults.FAULT_POINT = point
    cache = clients.get_token_cache()
    if lease is not None:
        cache.lease = lease
    cache.get_token(source_id)
    raise SystemExit(3)  # not reached when the fault point fired


def pager_child(barrier: str, parties: int, source_id: str, per_second: float, share: float,
                seconds: float) -> tuple[int, int, float, float]:
    """Page GET /users for `seconds` under an account limiter scaled down to `per_second`.
    Returns (pages, rate-limit errors, wall time of the first and of the last answer)."""
    from worker import clients
    from worker.kit.redis import get_redis
    from worker.ratelimit.bucket import AccountLimiter, CategoryLimit
    from worker.settings import get_settings
    from worker.zoom.client import ZoomClient
    from worker.zoom.endpoints import Category
    from worker.zoom.errors import ZoomRateLimited

    cache = clients.get_token_cache()
    limits = clients._source_limits(uuid.UUID(source_id))
    limiter = AccountLimiter(
        get_redis(), limits.account_key, share=share,
        limits={c: CategoryLimit(per_second) for c in Category},
    )
    client = ZoomClient(source_id, cache.for_source(source_id), limiter, clients.get_http(),
                        get_settings().zoom_api_url)
    cache.get_token(source_id)
    redis_barrier(barrier, parties)
    stop = time.monotonic() + seconds
    pages = limited = 0
    first = last = 0.0
    while time.monotonic() < stop:
        try:
            for _page in client.iter_pages("/users", {"page_size": 5}, "users"):
                last = time.time()
                first = first or last
                pages += 1
                if time.monotonic() >= stop:
                    break
        except ZoomRateLimited:
            limited += 1
    return pages, limited, first, last
