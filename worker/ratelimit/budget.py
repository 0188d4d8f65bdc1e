"""Zoom's daily caps as one budget per (Zoom account, daily group, UTC day), in Redis.

One counter, two users. The limiter (``bucket.py``) counts every request it lets through
(``used``) and refuses once the cap is spent; the planner *reserves* the Heavy calls a chunk is
expected to cost before it queues the chunk, so the chunks admitted today are the ones that
can finish today. Both live in one Redis hash per account, group and day::

    ai:rl:<account>:day:<group>:<epoch day>  ->  used, reserved, r:<reservation id>

A request sent while a reservation is being spent (``charging``) draws from it: ``used`` goes up
by one and the reservation down by one, so a running chunk is never counted twice. A request
without a reservation (or whose reservation is exhausted) must fit beside everyone's
reservations: reservations are promises to chunks already admitted. When the chunk ends, what is
left of its reservation is returned (``release``): an estimate that proved too high frees the
rest of the day for others.

The account key is the limiter's: the Zoom account id, or ``source:<id>`` until it is known, so
two apps of one account share one budget.
"""

from __future__ import annotations

import contextvars
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

import redis

from worker.ratelimit.plans import KEY_PREFIX, PLAN_LIMITS, CategoryLimit
from worker.zoom.endpoints import Category

EPOCH = date(1970, 1, 1)
# Day hashes outlive their day so a late release or a chunk running past midnight finds them.
DAY_TTL_SECONDS = 2 * 86400

# The reservation that requests of this context (one chunk's run) draw from.
current_reservation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ai_heavy_reservation", default=None)


def account_key(zoom_account_id: str | None, source_id: uuid.UUID | str) -> str:
    """The key both the limiter and the budget count under: Zoom counts per account."""
    return zoom_account_id or f"source:{source_id}"


def epoch_day(day: date) -> int:
    """Days since 1970-01-01: what the limiter's script computes from Redis's ``TIME``."""
    return (day - EPOCH).days


def utc_day(when: datetime) -> date:
    return when.astimezone(UTC).date()


def day_key(account: str, group: str, day: int) -> str:
    return f"{KEY_PREFIX}{account}:day:{group}:{day}"


def daily_cap(limit: CategoryLimit, share: float) -> int:
    """Our part of a category's daily cap (0: the category has none)."""
    return math.floor(limit.daily * share) if limit.daily else 0


def daily_group(limit: CategoryLimit, category: str) -> str:
    return limit.daily_group or category


@contextmanager
def charging(reservation_id: str | None) -> Iterator[None]:
    """Requests made inside this block draw from ``reservation_id`` (when it has calls left)."""
    token = current_reservation.set(reservation_id)
    try:
        yield
    finally:
        current_reservation.reset(token)


# Admit ``cost`` if it fits beside what is used and reserved; idempotent per reservation id
# (a redelivered planner or a second tick does not reserve twice). Returns the reservation,
# or -1 when it does not fit.
_RESERVE = """
local field = 'r:' .. ARGV[1]
local held = tonumber(redis.call('HGET', KEYS[1], field) or '0')
if held > 0 then return held end
local cost = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
if used + reserved + cost > cap then return -1 end
redis.call('HINCRBY', KEYS[1], 'reserved', cost)
redis.call('HSET', KEYS[1], field, cost)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return cost
"""

_RELEASE = """
local field = 'r:' .. ARGV[1]
local held = tonumber(redis.call('HGET', KEYS[1], field) or '0')
redis.call('HDEL', KEYS[1], field)
if held > 0 then
  local reserved = tonumber(redis.call('HINCRBY', KEYS[1], 'reserved', -held))
  if reserved < 0 then redis.call('HSET', KEYS[1], 'reserved', 0) end
end
return held
"""


@dataclass(frozen=True)
class DayState:
    cap: int
    used: int
    reserved: int

    @property
    def free(self) -> int:
        return max(0, self.cap - self.used - self.reserved)


class DailyBudget:
    """The daily budget of one Zoom account. ``share`` and ``limits`` as for the limiter."""

    def __init__(
        self,
        redis_client: redis.Redis,
        account: str,
        plan: str = "pro",
        share: float = 1.0,
        *,
        limits: dict[Category, CategoryLimit] | None = None,
    ) -> None:
        self.redis = redis_client
        self.account = account
        self.plan = plan if plan in PLAN_LIMITS else "pro"
        self.share = share
        self.limits = limits if limits is not None else PLAN_LIMITS[self.plan]

    def __repr__(self) -> str:
        return f"DailyBudget({self.account!r}, plan={self.plan!r}, share={self.share})"

    def _limit(self, category: str) -> CategoryLimit:
        return self.limits.get(Category(category), self.limits[Category.MEDIUM])

    def cap(self, category: str = Category.HEAVY) -> int:
        """Our share of the category's daily cap; 0 when it has none (no budget to keep)."""
        return daily_cap(self._limit(category), self.share)

    def key(self, day: date, category: str = Category.HEAVY) -> str:
        return day_key(self.account, daily_group(self._limit(category), category),
                       epoch_day(day))

    def reserve(self, reservation_id: str, calls: int, day: date,
                category: str = Category.HEAVY) -> int | None:
        """Reserve ``calls`` of ``day`` for one chunk if they fit; returns what is held (a
        reservation made before is kept as it is), or None. At most a whole day's cap is ever
        asked for: a chunk larger than a day takes one day's budget and resumes from its
        checkpoint the next, instead of waiting for a day that never comes."""
        cap = self.cap(category)
        if cap <= 0:
            return 0
        calls = min(max(1, calls), cap)
        held = int(self.redis.eval(_RESERVE, 1, self.key(day, category), reservation_id, calls,
                                   cap, DAY_TTL_SECONDS))
        return held if held >= 0 else None

    def release(self, reservation_id: str, day: date, category: str = Category.HEAVY) -> int:
        """Give back what is left of a reservation (the chunk ended); returns the calls freed."""
        return int(self.redis.eval(_RELEASE, 1, self.key(day, category),
                                   reservation_id))

    def state(self, day: date, category: str = Category.HEAVY) -> DayState:
        used, reserved = self.redis.hmget(self.key(day, category), ["used", "reserved"])
        return DayState(self.cap(category), int(used or 0), int(reserved or 0))

    def held(self, reservation_id: str, day: date, category: str = Category.HEAVY) -> int:
        raw = self.redis.hget(self.key(day, category), f"r:{reservation_id}")
        return int(raw or 0)
