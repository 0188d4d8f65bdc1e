"""Zoom's rate limits as one shared bucket per (Zoom account, category), in Redis.

Why our own Lua script: Zoom counts per *account* over all apps and processes, so the state must
be shared; callers must *wait their turn* (not fail, not poll); and a category can have two
windows at once (per second and per day, the day cap shared between Heavy and Resource-intensive
on paid plans). ``limits`` (with its Redis storage) answers "would this hit be allowed" for fixed
or moving windows but offers no reservation or wait time for a queue of callers, and its
``MovingWindow`` cannot share one daily counter between two categories atomically with the
per-second check; redis-py offers locks, not rate limiting. So: one script, run atomically on
Redis's own clock (``TIME``) so workers on different hosts agree on "now".

The per-second part is GCRA (the generic cell rate algorithm, a token bucket kept as one
"theoretical arrival time"): each ``acquire`` *reserves* the next slot and sleeps until it, so N
workers queue in arrival order with no polling. Burst defaults to 1: requests are spaced at
1/rate, which also keeps Zoom's (probable) fixed one-second windows at or under the rate, since
evenly spaced requests cannot crowd one window. ``drain(seconds)`` after a 429 pushes the slot
time past ``now + seconds`` for everyone on the account.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from worker.zoom.endpoints import Category
from worker.zoom.errors import TokenCacheUnavailable, ZoomRateLimited

log = logging.getLogger(__name__)

KEY_PREFIX = "ai:rl:"


@dataclass(frozen=True)
class CategoryLimit:
    per_second: float
    daily: int | None = None
    # Categories with the same daily group draw on one daily counter (Heavy + Resource on paid
    # plans); None with ``daily`` set means a counter of the category's own (Free plan).
    daily_group: str | None = None


_HR = "heavy+resource"
# Zoom's documented limits per account, by plan and category:
# https://developers.zoom.us/docs/commerce/rate-limits/
PLAN_LIMITS: dict[str, dict[Category, CategoryLimit]] = {
    "free": {
        Category.LIGHT: CategoryLimit(4, 6000),
        Category.MEDIUM: CategoryLimit(2, 2000),
        Category.HEAVY: CategoryLimit(1, 1000),
        Category.RESOURCE_INTENSIVE: CategoryLimit(10 / 60, 30000),
    },
    "pro": {
        Category.LIGHT: CategoryLimit(30),
        Category.MEDIUM: CategoryLimit(20),
        Category.HEAVY: CategoryLimit(10, 30000, _HR),
        Category.RESOURCE_INTENSIVE: CategoryLimit(10 / 60, 30000, _HR),
    },
    "business": {
        Category.LIGHT: CategoryLimit(80),
        Category.MEDIUM: CategoryLimit(60),
        Category.HEAVY: CategoryLimit(40, 60000, _HR),
        Category.RESOURCE_INTENSIVE: CategoryLimit(20 / 60, 60000, _HR),
    },
}

# Returns {status, wait_ms}: status 0 = slot reserved (sleep wait_ms, then send), -1 = daily cap
# spent (wait_ms until 00:00 UTC), -2 = the slot is further away than max_wait (nothing taken).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tol = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local daily_limit = tonumber(ARGV[4])
local dkey = nil
if daily_limit > 0 then
  local day = math.floor(tonumber(t[1]) / 86400)
  dkey = KEYS[2] .. ':' .. day
  local used = tonumber(redis.call('GET', dkey) or '0')
  if used >= daily_limit then
    return {-1, (day + 1) * 86400000 - now}
  end
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tol - now
if wait < 0 then wait = 0 end
if wait > max_wait then return {-2, math.ceil(wait)} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now + tol) + 1000)
if dkey then
  redis.call('INCR', dkey)
  redis.call('EXPIRE', dkey, 172800)
end
return {0, math.ceil(wait)}
"""

_DRAIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local target = now + tonumber(ARGV[1]) + tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < target then
  redis.call('SET', KEYS[1], tostring(target), 'PX', math.ceil(target - now) + 1000)
end
return 0
"""


class AccountLimiter:
    """The rate limiter of one Zoom account (``account_key``), shared by every worker.

    ``share`` is the part of the account's limits this deployment may use (other apps on the
    account draw from the same budget); it scales both the per-second rates and the daily caps.
    ``limits`` replaces the plan table (tests scale it down). ``max_wait`` bounds how long
    ``acquire`` waits when the caller gives no bound of its own.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        account_key: str,
        plan: str = "pro",
        share: float = 1.0,
        *,
        burst: int = 1,
        limits: dict[Category, CategoryLimit] | None = None,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.redis = redis_client
        self.account_key = account_key
        self.plan = plan if plan in PLAN_LIMITS else "pro"
        self.share = share
        self.burst = max(1, burst)
        self.limits = limits if limits is not None else PLAN_LIMITS[self.plan]
        self.max_wait = max_wait
        self._sleep = sleep
        self._acquire = redis_client.register_script(_ACQUIRE)
        self._drain = redis_client.register_script(_DRAIN)

    def __repr__(self) -> str:
        return f"AccountLimiter({self.account_key!r}, plan={self.plan!r}, share={self.share})"

    def _limit(self, category: str) -> CategoryLimit:
        try:
            return self.limits[Category(category)]
        except (ValueError, KeyError):
            return self.limits[Category.MEDIUM]

    def interval_ms(self, category: str) -> float:
        return 1000.0 / (self._limit(category).per_second * self.share)

    def _keys(self, category: str) -> list[str]:
        limit = self._limit(category)
        group = limit.daily_group or category
        base = f"{KEY_PREFIX}{self.account_key}"
        return [f"{base}:{category}", f"{base}:daily:{group}"]

    def acquire(self, category: str, max_wait: float | None = None) -> None:
        """Wait for this caller's slot in ``category``. Raises ``ZoomRateLimited`` when the slot
        is further away than ``max_wait`` (nothing is taken then) or the daily cap is spent."""
        limit = self._limit(category)
        bound = self.max_wait if max_wait is None else max(0.0, max_wait)
        interval = self.interval_ms(category)
        daily = math.floor(limit.daily * self.share) if limit.daily else 0
        try:
            status, wait_ms = self._acquire(
                keys=self._keys(category),
                args=[interval, (self.burst - 1) * interval, int(bound * 1000), daily],
            )
        except redis.RedisError as exc:
            raise TokenCacheUnavailable(
                f"rate limiter unreachable: {type(exc).__name__}",
                admin_message="The worker's Redis is unreachable; the sync will retry.",
            ) from exc
        wait = int(wait_ms) / 1000.0
        if status == -1:
            raise ZoomRateLimited(
                f"daily {category} budget of account {self.account_key} is spent ({daily})",
                retry_after=wait, daily=True,
            )
        if status == -2:
            raise ZoomRateLimited(
                f"{category} slot for account {self.account_key} is {wait:.1f}s away, over the "
                f"{bound:.1f}s bound", retry_after=wait,
            )
        if wait > 0:
            self._sleep(wait)

    def drain(self, category: str, seconds: float) -> None:
        """Make every worker on this account wait ``seconds`` before its next ``category`` call."""
        interval = self.interval_ms(category)
        try:
            self._drain(keys=self._keys(category)[:1],
                        args=[int(seconds * 1000), (self.burst - 1) * interval])
        except redis.RedisError as exc:
            raise TokenCacheUnavailable(
                f"rate limiter unreachable: {type(exc).__name__}") from exc
        log.info("rate bucket drained account=%s category=%s for %.2fs", self.account_key,
                 category, seconds)

    def daily_used(self, category: str) -> int:
        """Requests counted today against ``category``'s daily cap (for planners)."""
        now = self.redis.time()
        day = int(now[0]) // 86400
        raw = self.redis.get(f"{self._keys(category)[1]}:{day}")
        return int(raw or 0)
