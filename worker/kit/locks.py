"""Redis leases: exclusive locks per (source, job) and bounded concurrency slots per tenant.

Both expire on their own (a lease), so a worker killed with SIGKILL blocks nobody for longer than
one lease; while the holder works, a `Renewer` thread extends its leases. Locks never replace
idempotent writes: a lost lease only means two workers may briefly write the same upserts.

- `LeaseLock` is redis-py's `Lock` (compare-and-delete/extend scripts are the library's) with the
  run id as its token, so "who holds it" is readable for run records and redeliveries.
- `TenantSlots` is our own Lua script: redis-py has no counting semaphore with per-holder leases.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import redis
from redis.exceptions import LockError, LockNotOwnedError

from worker.settings import get_settings

log = logging.getLogger(__name__)


def default_lease_seconds() -> float:
    return get_settings().lock_lease_seconds


class Lease(Protocol):
    def renew(self) -> bool: ...

    def release(self) -> None: ...


class LeaseLock:
    """An exclusive lock with a lease; `owner` (a run id) is stored as the value."""

    def __init__(
        self, client: redis.Redis, name: str, *, owner: str, lease: float | None = None
    ) -> None:
        self.client = client
        self.name = name
        self.owner = owner
        self.lease = lease or default_lease_seconds()
        # thread_local=False: the Renewer thread must see the token the task thread acquired.
        self._lock = client.lock(name, timeout=self.lease, thread_local=False)
        self.acquired = False

    def acquire(self) -> bool:
        """Try once, without waiting: callers decide whether to skip or re-queue."""
        self.acquired = bool(self._lock.acquire(blocking=False, token=self.owner))
        return self.acquired

    def holder(self) -> str | None:
        value = self.client.get(self.name)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def renew(self) -> bool:
        if not self.acquired:
            return False
        try:
            self._lock.reacquire()
            return True
        except LockError:
            return False

    def release(self) -> None:
        if not self.acquired:
            return
        self.acquired = False
        try:
            self._lock.release()
        except LockNotOwnedError:
            # The lease ran out and someone else may hold it now: theirs, not ours to delete.
            log.warning("lock %s expired before release", self.name)
        except LockError:
            pass


# KEYS[1] slot set; ARGV: now_ms, lease_ms, max, holder. Expired holders are dropped first, so a
# killed worker's slot frees itself after one lease.
_ACQUIRE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[1] + ARGV[2], ARGV[4])
  return 1
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[1] + ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[2] * 2)
  return 1
end
return 0
"""

# Extend only a slot we still hold (XX): a slot that expired is gone, and renewing must not
# resurrect it over the limit.
_RENEW_SLOT = """
local expires = redis.call('ZSCORE', KEYS[1], ARGV[3])
if expires and tonumber(expires) > tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[1] + ARGV[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2] * 2)
  return 1
end
return 0
"""


def _now_ms(client: redis.Redis) -> int:
    # Redis time, not ours: workers on several machines must agree on when a lease ends.
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


class TenantSlot:
    """One of a tenant's `limit` concurrent task slots, held by `holder` (a task id)."""

    def __init__(
        self,
        client: redis.Redis,
        tenant_id: str,
        *,
        holder: str,
        limit: int,
        lease: float | None = None,
    ) -> None:
        self.client = client
        self.key = f"ai:tenant-slots:{tenant_id}"
        self.holder = holder
        self.limit = limit
        self.lease_ms = int((lease or default_lease_seconds()) * 1000)
        self.acquired = False

    def acquire(self) -> bool:
        result = self.client.eval(
            _ACQUIRE_SLOT, 1, self.key, _now_ms(self.client), self.lease_ms, self.limit, self.holder
        )
        self.acquired = bool(result)
        return self.acquired

    def renew(self) -> bool:
        if not self.acquired:
            return False
        result = self.client.eval(
            _RENEW_SLOT, 1, self.key, _now_ms(self.client), self.lease_ms, self.holder
        )
        return bool(result)

    def release(self) -> None:
        if self.acquired:
            self.acquired = False
            self.client.zrem(self.key, self.holder)

    def in_use(self) -> int:
        self.client.zremrangebyscore(self.key, "-inf", _now_ms(self.client))
        return int(self.client.zcard(self.key))


class Renewer:
    """Extends leases every third of the shortest lease until stopped.

    `lost` is set when a renewal fails (lease expired, Redis gone): long loops check it between
    pages and stop, because another worker may now be doing the same work.
    """

    def __init__(self, *leases: Lease, interval: float | None = None) -> None:
        self.leases = list(leases)
        self.interval = interval or max(default_lease_seconds() / 3, 0.2)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-renewer", daemon=True)

    def add(self, lease: Lease) -> None:
        self.leases.append(lease)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for lease in list(self.leases):
                try:
                    ok = lease.renew()
                except redis.RedisError:
                    ok = False
                if not ok:
                    log.warning("lost a lease: %r", getattr(lease, "name", lease))
                    self.lost.set()

    def start(self) -> Renewer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


@contextmanager
def renewing(*leases: Lease, interval: float | None = None) -> Iterator[Renewer]:
    """Keep `leases` alive for the duration of the block; release them afterwards."""
    renewer = Renewer(*leases, interval=interval).start()
    try:
        yield renewer
    finally:
        renewer.stop()
        for lease in renewer.leases:
            try:
                lease.release()
            except redis.RedisError:
                log.warning("could not release a lease; it expires on its own")

