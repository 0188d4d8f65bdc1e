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
evenly spaced requests cannot crowd one window.

**Adaptive pacing.** The plan's numbers times our share are only an upper bound: the account's
real limits are shared with every other app on it, and an account can be limited below its
plan. So the rate of each (account, category) is learned, in Redis, for every worker at once:

- a 429 cuts the rate multiplicatively (``BETA``), once per burst (every worker of the account
  sees the same 429s; one cut answers them all), and pushes everyone's next slot past
  ``Retry-After`` (seconds or an HTTP date, rounded up: a date has one-second resolution); a
  request that was already asleep waiting for a slot reserved before the cut takes a new one
  when it wakes, instead of sending into the same burst (the first burst of 429s of several
  workers was mostly those);
- every request sent without a 429 since then adds a little back (additive, per request, not
  per second: an idle account does not drift up): quickly to just under the rate that failed,
  then slowly above it (a probe), so the rate settles under the real limit instead of
  see-sawing between half and all of it;
- an ``X-RateLimit-Limit`` on a per-second 429 is the account's real limit: the rate is held
  under it for ``CEILING_TTL`` (then probed again, in case the other apps went quiet); a 429
  while the rate sits at that ceiling means the limit is counted over a window wider than a
  second (an account limited below one request a second is told "1"): the ceiling is halved;
- a per-second 429 that names no limit (Zoom often sends only ``Retry-After``) is measured
  instead: the script keeps the send times of the last seconds, for every worker, and the
  requests granted in the second before the refused one was sent are what the account lets us
  send. When that is under our rate, the cut goes straight to just under it and is held like
  a named limit (a fresh measure replaces the one held), instead of halving blindly (from 8/s
  to a real 1/s: three 429s and three Retry-Afters; from just above the limit to far under it)
  and then probing back up past it. A count at or above our rate (fixed windows: one sliding
  second can hold two windows' grants) says nothing, and the rate is halved. It counts only
  when we were sending back to back: after a pause the grants are what we happened to send,
  not what the account allows.
  Woken for its slot, a request records the time it really goes out, so a worker that wakes
  late is counted in the order Zoom saw;
- one cut per burst means per burst of *requests*: a 429 of a request sent after the last cut
  (so paced at the cut rate) is a new signal even inside the cooldown;
- an ``X-RateLimit-Remaining`` of a daily limit corrects our daily count (``budget.py``).

The rate never exceeds the configured share of the plan, and never falls below ``MIN_FRACTION``
of it. The daily caps are the budget of ``budget.py``: the same Redis hash, so the planner's
reservations and the requests the limiter counts are one counter.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping

import redis

from worker.ratelimit.budget import (
    DAY_TTL_SECONDS,
    current_reservation,
    daily_cap,
    daily_group,
)
from worker.ratelimit.plans import KEY_PREFIX, PLAN_LIMITS, CategoryLimit
from worker.zoom.client import retry_after_date
from worker.zoom.endpoints import Category
from worker.zoom.errors import TokenCacheUnavailable, ZoomRateLimited

log = logging.getLogger(__name__)

__all__ = ["KEY_PREFIX", "PLAN_LIMITS", "AccountLimiter", "CategoryLimit", "retry_after_seconds"]

# A 429 multiplies the rate by BETA. Each request sent since then adds FAST x the rate that
# failed (~40 requests back to) KNEE x that rate, then SLOW x it (a probe: ~50 requests to close
# the last 10%, so at worst one 429 in ~50 whatever the rate). A slow climb matters more than a
# fast one: the next 429 then comes near the real limit, so the rate that failed converges on
# it within a few cuts instead of creeping down by a tenth per cut. One cut per
# COOLDOWN_INTERVALS slots (at least a second): the 429s of one burst are one signal.
BETA = 0.5
KNEE = 0.9
FAST = 0.01
SLOW = 0.002
COOLDOWN_INTERVALS = 2
MIN_FRACTION = 0.01
# Under a limit Zoom told us, with room for the jitter of requests crossing Zoom's windows.
CEILING_MARGIN = 0.95
CEILING_TTL_SECONDS = 600
PACE_TTL_SECONDS = 3600
# How many times a sleeping request takes a new slot after other workers' 429s.
RESLOTS = 5
# Without a Retry-After, a per-second 429 needs about one second to clear.
DEFAULT_RETRY_AFTER_SECONDS = 1.0
# The sends of the last few seconds are kept (as their slot times) to count, on a 429 that names
# no limit, how many Zoom granted in the second before it.
SENT_WINDOW_MS = 3000
# Those grants measure the account's limit only if we were sending back to back: the refused
# request followed the one before it within two intervals (or this long, for a worker whose
# spacing is set by Zoom's latency rather than by the limiter).
BUSY_GAP_MS = 250

# The effective rate (requests per second) of one (account, category) at `now`.
_EFFECTIVE = """
local function effective(pkey, now, max_rate)
  local p = redis.call('HMGET', pkey, 'base', 'sent', 'bad', 'ceiling', 'ceiling_until')
  local rate = max_rate
  local ceiling = tonumber(p[4] or '0')
  if ceiling > 0 and tonumber(p[5] or '0') > now and ceiling < rate then rate = ceiling end
  local base = tonumber(p[1] or '0')
  if base > 0 then
    local n = tonumber(p[2] or '0')
    local bad = tonumber(p[3] or '0')
    local knee = bad * @KNEE@
    local fast = bad * @FAST@
    local slow = bad * @SLOW@
    local r
    local n_knee = 0
    if knee > base then n_knee = (knee - base) / fast end
    if n <= n_knee then
      r = base + fast * n
    else
      r = math.max(base, knee) + slow * (n - n_knee)
    end
    if r < rate then rate = r end
  end
  return rate
end
""".replace("@KNEE@", str(KNEE)).replace("@FAST@", str(FAST)).replace(
    "@SLOW@", str(SLOW))

# The slot time of a request, under its id, in the sends of the last few seconds.
_SENT = """
local function record_send(skey, member, slot, now)
  redis.call('ZADD', skey, slot, member)
  redis.call('ZREMRANGEBYSCORE', skey, '-inf', now - @WINDOW@)
  redis.call('PEXPIRE', skey, math.ceil(slot - now) + @WINDOW@ + 1000)
end
""".replace("@WINDOW@", str(SENT_WINDOW_MS))

# KEYS: slot (GCRA tat), daily hash prefix, pace hash, sends. Returns {status, wait_ms}: status
# 0 = slot reserved (sleep wait_ms, then send), -1 = daily cap spent (wait_ms until 00:00 UTC),
# -2 = the slot is further away than max_wait (nothing taken). ARGV[7]: the request's id.
_ACQUIRE = _EFFECTIVE + _SENT + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = effective(KEYS[3], now, tonumber(ARGV[1]))
local interval = 1000 / rate
local tol = (tonumber(ARGV[2]) - 1) * interval
local max_wait = tonumber(ARGV[3])
local daily_limit = tonumber(ARGV[4])
local dkey = nil
local mine = 0
local rfield = 'r:' .. ARGV[5]
if daily_limit > 0 then
  local day = math.floor(tonumber(t[1]) / 86400)
  dkey = KEYS[2] .. ':' .. day
  local d = redis.call('HMGET', dkey, 'used', 'reserved', rfield)
  local used = tonumber(d[1] or '0')
  local reserved = tonumber(d[2] or '0')
  if ARGV[5] ~= '' then mine = tonumber(d[3] or '0') end
  -- A request drawing on its chunk's reservation may use the day to the end; any other must
  -- leave the reservations of admitted chunks alone.
  if used >= daily_limit or (mine <= 0 and used + reserved >= daily_limit) then
    return {-1, (day + 1) * 86400000 - now, '0'}
  end
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tol - now
if wait < 0 then wait = 0 end
if wait > max_wait then return {-2, math.ceil(wait), '0'} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now + tol) + 1000)
record_send(KEYS[4], ARGV[7], now + wait, now)
if redis.call('HEXISTS', KEYS[3], 'base') == 1 then
  redis.call('HINCRBY', KEYS[3], 'sent', 1)
end
if dkey then
  redis.call('HINCRBY', dkey, 'used', 1)
  if mine > 0 then
    redis.call('HINCRBY', dkey, rfield, -1)
    redis.call('HINCRBY', dkey, 'reserved', -1)
  end
  redis.call('EXPIRE', dkey, tonumber(ARGV[6]))
end
return {0, math.ceil(wait), redis.call('HGET', KEYS[3], 'cut_at') or '0'}
"""

# A slot taken again, for a request already counted (by ``_ACQUIRE``) whose slot came up after
# a 429 of another worker: the rate it was reserved at is stale. KEYS: slot, pace hash, sends.
# ARGV: max rate, burst, max wait ms, request id. Returns {status (0, or -2 too far), wait_ms,
# cut generation}.
_RESLOT = _EFFECTIVE + _SENT + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = 1000 / effective(KEYS[2], now, tonumber(ARGV[1]))
local tol = (tonumber(ARGV[2]) - 1) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tol - now
if wait < 0 then wait = 0 end
if wait > tonumber(ARGV[3]) then return {-2, math.ceil(wait), '0'} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now + tol) + 1000)
record_send(KEYS[3], ARGV[4], now + wait, now)
return {0, math.ceil(wait), redis.call('HGET', KEYS[2], 'cut_at') or '0'}
"""

# A request woken for its slot. KEYS: pace hash, sends. ARGV: the cut generation its slot was
# taken in, its id. Returns 1 when a cut came meanwhile (take a new slot), else records the
# send at Redis's now and returns 0: a worker that wakes late may send after one whose slot was
# later, and the count of grants before a 429 must follow the order Zoom saw.
_SENDING = """
if (redis.call('HGET', KEYS[1], 'cut_at') or '0') ~= ARGV[1] then return 1 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], 'XX', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),
           ARGV[2])
return 0
"""

# A 429. KEYS: slot, pace hash, sends. ARGV: max rate, min rate, wait ms, ceiling (0: none),
# ceiling ttl ms, pace ttl s, cooldown ms (-1: the default), the refused request's id ('' when
# unknown), 1 to estimate the limit from the grants (no limit named). Pushes every worker's next
# slot past the wait, cuts the rate (once per burst) and remembers a limit Zoom named or one
# measured. Returns {cut?, rate in milli-requests/s after, grants counted (-1: not a measure)}.
_THROTTLE = _EFFECTIVE + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max_rate = tonumber(ARGV[1])
local min_rate = tonumber(ARGV[2])
local rate = effective(KEYS[2], now, max_rate)
-- When the refused request went out, and how many went out in the second before it: those
-- were granted (a refusal drains everyone for at least a second, and is taken out here).
local sent_at = now
local known = false
if ARGV[8] ~= '' then
  local score = redis.call('ZSCORE', KEYS[3], ARGV[8])
  if score then
    sent_at = tonumber(score)
    known = true
    redis.call('ZREM', KEYS[3], ARGV[8])
  end
end
local granted = -1
if ARGV[9] == '1' then
  local prev = redis.call('ZREVRANGEBYSCORE', KEYS[3], sent_at, '-inf', 'WITHSCORES', 'LIMIT',
                          0, 1)
  -- Sent back to back, the grants of that second are what the account allows us; after a
  -- pause they are only what we happened to send.
  if prev[2] and sent_at - tonumber(prev[2]) <= math.max(2000 / rate, @BUSY@) then
    granted = redis.call('ZCOUNT', KEYS[3], '(' .. (sent_at - 1000), sent_at)
  end
end
local cut = 0
local cut_at = tonumber(redis.call('HGET', KEYS[2], 'cut_at') or '0')
local cooldown = math.max(1000, @COOLDOWN@ * 1000 / rate)
if tonumber(ARGV[7]) >= 0 then cooldown = tonumber(ARGV[7]) end
local measured = 0
-- One cut per burst: the 429s of requests sent before the last cut answer that cut. A request
-- sent after it was paced at the cut rate, so its 429 says that rate is still too high.
if now - cut_at >= cooldown or (known and sent_at >= cut_at) then
  local base = math.max(min_rate, rate * @BETA@)
  local bad = rate
  -- Granted fewer than our rate: cut straight to under that, not by halves (each halving costs
  -- a 429 and its Retry-After; a halving from just above the limit lands far under it, and
  -- the recovery from there probes back over it), and hold it rather than recover towards our
  -- old rate.
  if granted > 0 and granted * @MARGIN@ < rate then
    measured = math.max(min_rate, granted * @MARGIN@)
    base = measured
    bad = granted
  end
  redis.call('HSET', KEYS[2], 'base', tostring(base), 'cut_at', tostring(now),
             'bad', tostring(bad), 'sent', 0)
  cut = 1
end
-- A limit Zoom named (or one measured) is kept (the lowest in force wins). A 429 while the rate
-- already sat at that limit means its window is longer than a second (an account limited below
-- one request a second answers "1" for a wider window): halve it, as the rate was.
local ceiling = tonumber(ARGV[4])
if measured > 0 and (ceiling <= 0 or measured < ceiling) then ceiling = measured end
local held = 0
local c = redis.call('HMGET', KEYS[2], 'ceiling', 'ceiling_until')
if tonumber(c[2] or '0') > now then held = tonumber(c[1] or '0') end
if measured > 0 then
  -- A fresh measure replaces what was held: the grants are what the account allows now.
  held = 0
elseif cut == 1 and held > 0 and rate >= held * 0.99 then
  held = math.max(min_rate, held * @BETA@)
end
if held > 0 and (ceiling <= 0 or held < ceiling) then ceiling = held end
if ceiling > 0 then
  redis.call('HSET', KEYS[2], 'ceiling', tostring(ceiling), 'ceiling_until',
             tostring(now + tonumber(ARGV[5])))
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[6]))
local target = now + tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < target then
  redis.call('SET', KEYS[1], tostring(target), 'PX', math.ceil(target - now) + 1000)
end
return {cut, math.floor(effective(KEYS[2], now, max_rate) * 1000), granted}
""".replace("@COOLDOWN@", str(COOLDOWN_INTERVALS)).replace("@BETA@", str(BETA)).replace(
    "@MARGIN@", str(CEILING_MARGIN)).replace("@BUSY@", str(BUSY_GAP_MS))

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

# Zoom says how much of a daily cap is left: our count may not show more room than that.
# KEYS: daily hash prefix. ARGV: our cap, Zoom's remaining, ttl. Returns `used` after.
_DAILY_REMAINING = """
local t = redis.call('TIME')
local dkey = KEYS[1] .. ':' .. math.floor(tonumber(t[1]) / 86400)
local floor = tonumber(ARGV[1]) - tonumber(ARGV[2])
local used = tonumber(redis.call('HGET', dkey, 'used') or '0')
if floor > used then
  redis.call('HSET', dkey, 'used', floor)
  used = floor
end
redis.call('EXPIRE', dkey, tonumber(ARGV[3]))
return used
"""


_RATE = _EFFECTIVE + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return math.floor(effective(KEYS[1], now, tonumber(ARGV[1])) * 1000)
"""


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait, rounded up to whole seconds: Zoom sends seconds or an
    HTTP (or ISO) date, and a date names a second, so waiting to the fraction would sometimes
    send before the moment meant. None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(max(0, math.ceil(float(value))))
    except ValueError:
        pass
    when = retry_after_date(value)
    if when is None:
        return None
    now = time.time() if now is None else now
    return float(max(1, math.ceil(when.timestamp() - now)))


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(str(raw).strip())
    except ValueError:
        return None


def _text(value: object) -> str:
    """A Redis reply as text, whether the client decodes responses or not (None: "0")."""
    if isinstance(value, bytes):
        return value.decode()
    return "0" if value is None else str(value)


def _is_daily_type(headers: Mapping[str, str]) -> bool:
    return "daily" in str(headers.get("X-RateLimit-Type", "")).lower()


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
        clock: Callable[[], float] = time.time,
        cooldown: float | None = None,
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
        self._clock = clock
        # One cut per burst of 429s; None: COOLDOWN_INTERVALS slots, at least a second.
        self.cooldown = cooldown
        self._acquire = redis_client.register_script(_ACQUIRE)
        self._throttle = redis_client.register_script(_THROTTLE)
        self._drain = redis_client.register_script(_DRAIN)
        self._daily_remaining = redis_client.register_script(_DAILY_REMAINING)
        self._rate = redis_client.register_script(_RATE)
        self._reslot = redis_client.register_script(_RESLOT)
        self._sending = redis_client.register_script(_SENDING)
        # The id of this thread's last request per category: its 429 finds its send time by it.
        self._sent = threading.local()

    def __repr__(self) -> str:
        return f"AccountLimiter({self.account_key!r}, plan={self.plan!r}, share={self.share})"

    def _limit(self, category: str) -> CategoryLimit:
        try:
            return self.limits[Category(category)]
        except (ValueError, KeyError):
            return self.limits[Category.MEDIUM]

    def max_rate(self, category: str) -> float:
        """The configured ceiling: the plan's rate times our share (requests per second)."""
        return self._limit(category).per_second * self.share

    def interval_ms(self, category: str) -> float:
        return 1000.0 / self.max_rate(category)

    def _keys(self, category: str) -> list[str]:
        limit = self._limit(category)
        base = f"{KEY_PREFIX}{self.account_key}"
        return [f"{base}:{category}", f"{base}:day:{daily_group(limit, category)}",
                f"{base}:{category}:pace", f"{base}:{category}:sent"]

    def _last_sent(self) -> dict[str, str]:
        ids: dict[str, str] | None = getattr(self._sent, "ids", None)
        if ids is None:
            ids = self._sent.ids = {}
        return ids

    def _unreachable(self, exc: redis.RedisError) -> TokenCacheUnavailable:
        return TokenCacheUnavailable(
            f"rate limiter unreachable: {type(exc).__name__}",
            admin_message="The worker's Redis is unreachable; the sync will retry.",
        )

    def acquire(self, category: str, max_wait: float | None = None) -> None:
        """Wait for this caller's slot in ``category``. Raises ``ZoomRateLimited`` when the slot
        is further away than ``max_wait`` (nothing is taken then) or the daily cap is spent."""
        limit = self._limit(category)
        bound = self.max_wait if max_wait is None else max(0.0, max_wait)
        daily = daily_cap(limit, self.share)
        request_id = os.urandom(8).hex()
        self._last_sent()[category] = request_id
        try:
            status, wait_ms, generation = self._acquire(
                keys=self._keys(category),
                args=[self.max_rate(category), self.burst, int(bound * 1000), daily,
                      current_reservation.get() or "", DAY_TTL_SECONDS, request_id],
            )
        except redis.RedisError as exc:
            raise self._unreachable(exc) from exc
        if status == -1:
            raise ZoomRateLimited(
                f"daily {category} budget of account {self.account_key} is spent ({daily})",
                retry_after=int(wait_ms) / 1000.0, daily=True,
            )
        # Sleep until the slot; if another worker met a 429 meanwhile, the slot was reserved at
        # a rate now known to be too high: take one at the new rate instead of sending into the
        # same burst of 429s (the request is counted once, by the first script).
        started = self._clock()
        for attempt in range(RESLOTS + 1):
            wait = int(wait_ms) / 1000.0
            if status == -2:
                raise ZoomRateLimited(
                    f"{category} slot for account {self.account_key} is {wait:.1f}s away, over "
                    f"the {bound:.1f}s bound", retry_after=wait,
                )
            if wait <= 0:
                return
            self._sleep(wait)
            if attempt == RESLOTS:
                return
            keys = self._keys(category)
            try:
                if self._sending(keys=[keys[2], keys[3]],
                                 args=[_text(generation), request_id]) == 0:
                    return
                left = max(0.0, bound - (self._clock() - started))
                status, wait_ms, generation = self._reslot(
                    keys=[keys[0], keys[2], keys[3]],
                    args=[self.max_rate(category), self.burst, int(left * 1000), request_id])
            except redis.RedisError as exc:
                raise self._unreachable(exc) from exc

    def throttled(self, category: str, headers: Mapping[str, str], *,
                  daily: bool = False) -> bool:
        """Zoom answered 429: learn from it for every worker of the account. Returns whether
        the pacing could still adapt (the rate was above its floor): only a 429 at the floor
        should count towards the caller giving up."""
        if daily or _is_daily_type(headers):
            self.zoom_daily_remaining(category, 0)
            return False
        max_rate = self.max_rate(category)
        wait = retry_after_seconds(headers.get("Retry-After"), self._clock())
        if wait is None:
            wait = DEFAULT_RETRY_AFTER_SECONDS
        ceiling = 0.0
        named = _header_int(headers, "X-RateLimit-Limit")
        if named and named > 0:
            # Resource-intensive limits are per minute; the others per second.
            window = 60.0 if category == Category.RESOURCE_INTENSIVE else 1.0
            ceiling = min(max_rate, named / window * CEILING_MARGIN)
        min_rate = max_rate * MIN_FRACTION
        keys = self._keys(category)
        try:
            cut, milli, granted = self._throttle(
                keys=[keys[0], keys[2], keys[3]],
                args=[max_rate, min_rate, int(wait * 1000), ceiling,
                      CEILING_TTL_SECONDS * 1000, PACE_TTL_SECONDS,
                      -1 if self.cooldown is None else int(self.cooldown * 1000),
                      self._last_sent().pop(category, ""), 0 if ceiling else 1],
            )
        except redis.RedisError as exc:
            raise self._unreachable(exc) from exc
        rate = int(milli) / 1000.0
        log.info("zoom 429 account=%s category=%s: wait %.0fs, rate %.3f/s%s%s%s",
                 self.account_key, category, wait, rate, " (cut)" if cut else "",
                 f", Zoom's limit {named}" if named else "",
                 f", {int(granted)} granted in the second before" if int(granted) >= 0 else "")
        return rate > min_rate * 1.001

    def observe(self, category: str, headers: Mapping[str, str]) -> None:
        """A successful answer: Zoom's daily ``X-RateLimit-Remaining``, when it sends one,
        corrects our daily count. (Per-second recovery needs no report: ``acquire`` counts the
        requests sent since the last cut.) Costs a Redis call only when the header is there."""
        if not _is_daily_type(headers):
            return
        remaining = _header_int(headers, "X-RateLimit-Remaining")
        if remaining is not None:
            self.zoom_daily_remaining(category, remaining)

    def zoom_daily_remaining(self, category: str, remaining: int) -> None:
        limit = self._limit(category)
        cap = daily_cap(limit, self.share)
        if cap <= 0:
            return
        try:
            self._daily_remaining(keys=[self._keys(category)[1]],
                                  args=[cap, max(0, remaining), DAY_TTL_SECONDS])
        except redis.RedisError as exc:
            raise self._unreachable(exc) from exc

    def rate(self, category: str) -> float:
        """The rate ``acquire`` paces ``category`` at now (requests per second)."""
        return int(self._rate(keys=[self._keys(category)[2]],
                              args=[self.max_rate(category)])) / 1000.0

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
        raw = self.redis.hget(f"{self._keys(category)[1]}:{day}", "used")
        return int(raw or 0)
