"""Adaptive pacing against real Redis: a 429 cuts the account's rate once per burst, requests
sent without a 429 bring it back (many of them are simulated by setting the count),
Zoom's limit header caps it, Retry-After is honoured rounded up, and the rate never leaves
[floor, configured share]."""

from __future__ import annotations

import email.utils
import time
import uuid

import pytest
import redis

from worker.ratelimit import bucket
from worker.ratelimit.bucket import AccountLimiter, retry_after_seconds
from worker.ratelimit.plans import CategoryLimit
from worker.zoom.endpoints import Category
from worker.zoom.errors import ZoomRateLimited

QPS = {"Retry-After": "1"}


def limiter(client: redis.Redis, per_second: float = 10, share: float = 0.8,
            **kw: object) -> tuple[AccountLimiter, list[float]]:
    slept: list[float] = []
    limits = {c: CategoryLimit(per_second, 1000 if c == Category.HEAVY else None, "hr")
              for c in Category}
    kw.setdefault("sleep", slept.append)
    lim = AccountLimiter(client, f"acct-{uuid.uuid4().hex[:8]}", share=share, limits=limits,
                         **kw)  # type: ignore[arg-type]
    return lim, slept


def sent_since_cut(client: redis.Redis, lim: AccountLimiter, category: str, n: int) -> None:
    """As if `n` requests had gone out without a 429 since the last cut."""
    client.hset(f"{bucket.KEY_PREFIX}{lim.account_key}:{category}:pace", "sent", n)


def test_a_429_cuts_the_rate_once_per_burst_for_every_worker(redis_client: redis.Redis) -> None:
    lim, _ = limiter(redis_client)
    twin = AccountLimiter(redis_client, lim.account_key, share=0.8, limits=lim.limits)
    assert lim.rate("medium") == pytest.approx(8)
    assert lim.throttled("medium", QPS)
    assert lim.rate("medium") == pytest.approx(8 * bucket.BETA, rel=0.05)
    twin.throttled("medium", QPS)  # the same burst, seen by another worker: no second cut
    assert twin.rate("medium") == pytest.approx(8 * bucket.BETA, rel=0.05)
    assert lim.rate("light") == pytest.approx(8)  # other categories keep their own rate


def test_the_rate_recovers_while_requests_succeed_and_never_passes_the_share(
    redis_client: redis.Redis,
) -> None:
    lim, _ = limiter(redis_client, per_second=1000, share=0.008)  # 8/s; sleeps recorded
    lim.throttled("medium", {"Retry-After": "0"})
    cut = lim.rate("medium")
    for _ in range(3):
        lim.acquire("medium")
    three = lim.rate("medium")
    assert cut < three < 8
    assert three == pytest.approx(cut + 3 * 8 * bucket.FAST, rel=0.01)
    # Quickly back to just under the rate that failed, then only a slow probe above it.
    knee_after = (bucket.KNEE - bucket.BETA) / bucket.FAST
    sent_since_cut(redis_client, lim, "medium", round(knee_after))
    assert lim.rate("medium") == pytest.approx(8 * bucket.KNEE, rel=0.01)
    sent_since_cut(redis_client, lim, "medium", round(knee_after) + 25)
    assert lim.rate("medium") == pytest.approx(8 * (bucket.KNEE + 25 * bucket.SLOW), rel=0.01)
    sent_since_cut(redis_client, lim, "medium", 1_000_000)
    assert lim.rate("medium") == pytest.approx(8)  # the configured share is the ceiling


def test_the_spacing_follows_the_adapted_rate(redis_client: redis.Redis) -> None:
    lim, slept = limiter(redis_client, per_second=10, share=1.0)
    lim.throttled("heavy", {"Retry-After": "0"})
    lim.acquire("heavy")
    lim.acquire("heavy")
    assert slept[-1] == pytest.approx(1 / (10 * bucket.BETA), rel=0.1)


def test_zooms_limit_header_holds_the_rate_under_the_accounts_real_limit(
    redis_client: redis.Redis,
) -> None:
    lim, _ = limiter(redis_client)
    lim.throttled("heavy", {"Retry-After": "1", "X-RateLimit-Type": "QPS",
                            "X-RateLimit-Limit": "2", "X-RateLimit-Remaining": "0"})
    assert lim.rate("heavy") == pytest.approx(2 * bucket.CEILING_MARGIN)
    sent_since_cut(redis_client, lim, "heavy", 1_000_000)
    assert lim.rate("heavy") == pytest.approx(2 * bucket.CEILING_MARGIN)  # until it expires


def test_retry_after_drains_the_account_for_everyone(redis_client: redis.Redis) -> None:
    lim, _ = limiter(redis_client)
    twin, twin_slept = limiter(redis_client)
    twin.account_key = lim.account_key
    lim.throttled("medium", {"Retry-After": "3"})
    twin.acquire("medium")
    assert twin_slept
    assert 2.9 <= twin_slept[0] <= 3.0


def test_retry_after_is_read_as_seconds_or_a_date_and_rounded_up() -> None:
    assert retry_after_seconds("2") == 2
    assert retry_after_seconds("0.2") == 1
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    now = 1_000_000.4
    date = email.utils.formatdate(1_000_001, usegmt=True)  # one second's resolution
    assert retry_after_seconds(date, now) == 1  # 0.6 s rounded up, never shorter than meant
    assert retry_after_seconds(email.utils.formatdate(999_999, usegmt=True), now) == 1
    assert retry_after_seconds("1970-01-12T13:46:45Z", now) == 5


def test_a_storm_counts_only_once_the_rate_is_at_its_floor(redis_client: redis.Redis) -> None:
    lim, _ = limiter(redis_client, cooldown=0)  # every 429 is a burst of its own
    adapting = [lim.throttled("medium", QPS) for _ in range(12)]
    # 8/s halved 6 times is under the floor of 1% (0.08/s): the 7th 429 finds it there.
    assert adapting[:6] == [True] * 6
    assert adapting[7:] == [False] * 5
    assert lim.rate("medium") == pytest.approx(8 * bucket.MIN_FRACTION, rel=0.05)


def test_a_daily_429_spends_the_day_and_zooms_remaining_corrects_our_count(
    redis_client: redis.Redis,
) -> None:
    lim, _ = limiter(redis_client, share=1.0)
    lim.acquire("heavy")
    lim.observe("heavy", {"X-RateLimit-Type": "Daily-limit", "X-RateLimit-Remaining": "10"})
    assert lim.daily_used("heavy") == 990
    lim.observe("heavy", {"X-RateLimit-Remaining": "0"})  # not a daily header: ignored
    assert lim.daily_used("heavy") == 990
    assert not lim.throttled("heavy", {"X-RateLimit-Type": "Daily-limit"}, daily=True)
    with pytest.raises(ZoomRateLimited) as info:
        lim.acquire("heavy")
    assert info.value.daily


def test_a_429_at_zooms_named_limit_halves_it_a_wider_window(redis_client: redis.Redis) -> None:
    # An account limited to one request per two seconds: Zoom's header says "1" (a window).
    lim, _ = limiter(redis_client, cooldown=0)
    named = {"Retry-After": "1", "X-RateLimit-Type": "QPS", "X-RateLimit-Limit": "1"}
    lim.throttled("heavy", named)
    assert lim.rate("heavy") == pytest.approx(bucket.CEILING_MARGIN)
    lim.throttled("heavy", named)  # refused again at that rate: the window is wider
    assert lim.rate("heavy") == pytest.approx(bucket.CEILING_MARGIN * bucket.BETA, rel=0.01)
    sent_since_cut(redis_client, lim, "heavy", 1_000_000)
    assert lim.rate("heavy") == pytest.approx(bucket.CEILING_MARGIN * bucket.BETA, rel=0.01)


def test_a_429_under_the_named_limit_leaves_it_alone(redis_client: redis.Redis) -> None:
    lim, _ = limiter(redis_client, cooldown=0)
    named = {"Retry-After": "1", "X-RateLimit-Type": "QPS", "X-RateLimit-Limit": "4"}
    lim.throttled("heavy", named)
    assert lim.rate("heavy") == pytest.approx(4 * bucket.CEILING_MARGIN)  # under 8 * BETA
    # The rate well under Zoom's limit (cut by other 429s): a 429 there is jitter or another
    # app's burst, not a wider window; only the rate is cut.
    redis_client.hset(f"{bucket.KEY_PREFIX}{lim.account_key}:heavy:pace",
                      mapping={"base": 1, "sent": 0})
    lim.throttled("heavy", named)
    sent_since_cut(redis_client, lim, "heavy", 1_000_000)
    assert lim.rate("heavy") == pytest.approx(4 * bucket.CEILING_MARGIN, rel=0.01)
    lim.throttled("heavy", QPS)  # at the ceiling: halved, and kept without a header
    sent_since_cut(redis_client, lim, "heavy", 1_000_000)
    assert lim.rate("heavy") == pytest.approx(2 * bucket.CEILING_MARGIN, rel=0.01)


def test_a_request_waiting_for_its_slot_takes_a_new_one_after_another_workers_429(
    redis_client: redis.Redis,
) -> None:
    lim, _ = limiter(redis_client, share=1.0)
    twin, _ = limiter(redis_client, share=1.0)
    twin.account_key = lim.account_key
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 1:  # while this one waits, another worker is answered 429
            twin.throttled("heavy", {"Retry-After": "1"})

    lim._sleep = sleep
    lim.acquire("heavy")  # sent at once
    lim.acquire("heavy")  # its slot, a tenth of a second away, is taken again past the 429
    assert len(slept) == 2
    assert slept[0] == pytest.approx(0.1, abs=0.02)
    assert 0.8 <= slept[1] <= 1.0
    assert lim.daily_used("heavy") == 2  # each request counted once


# --- a 429 that names no limit: what Zoom granted in the second before it ------------------

def sent_key(lim: AccountLimiter, category: str) -> str:
    return f"{bucket.KEY_PREFIX}{lim.account_key}:{category}:sent"


def test_without_a_limit_header_the_rate_is_cut_to_what_zoom_granted_in_the_second_before(
    redis_client: redis.Redis,
) -> None:
    lim, slept = limiter(redis_client)  # 8/s; sleeps recorded, so the slots are 125 ms apart
    for _ in range(3):
        lim.acquire("heavy")
    assert slept == [pytest.approx(0.125, abs=0.02), pytest.approx(0.25, abs=0.02)]
    # The third is refused: Zoom granted two in the second before it, a quarter of our rate.
    lim.throttled("heavy", QPS)
    assert lim.rate("heavy") == pytest.approx(2 * bucket.CEILING_MARGIN)
    # Held there, like a limit Zoom named, instead of recovering towards the 8/s that failed.
    sent_since_cut(redis_client, lim, "heavy", 1_000_000)
    assert lim.rate("heavy") == pytest.approx(2 * bucket.CEILING_MARGIN)


def test_the_grants_of_every_worker_of_the_account_count(redis_client: redis.Redis) -> None:
    lim, _ = limiter(redis_client)
    twin, _ = limiter(redis_client)
    twin.account_key = lim.account_key
    lim.acquire("heavy")
    twin.acquire("heavy")
    lim.acquire("heavy")
    twin.acquire("heavy")
    twin.throttled("heavy", QPS)  # its second request: three granted before it, one was its own
    assert lim.rate("heavy") == pytest.approx(3 * bucket.CEILING_MARGIN)


def test_grants_just_under_our_rate_cut_to_them_not_by_half(
    redis_client: redis.Redis,
) -> None:
    # A halving from just above the limit lands far under it, and the recovery from there probes
    # back over it (a 429 more, multi-process runs showed).
    lim, _ = limiter(redis_client)
    for _ in range(7):  # six granted at 8/s, the seventh refused
        lim.acquire("heavy")
    lim.throttled("heavy", QPS)
    assert lim.rate("heavy") == pytest.approx(6 * bucket.CEILING_MARGIN, rel=0.01)
    sent_since_cut(redis_client, lim, "heavy", 1_000_000)
    assert lim.rate("heavy") == pytest.approx(6 * bucket.CEILING_MARGIN, rel=0.01)  # held


def test_grants_at_our_rate_or_more_are_no_measure_and_the_rate_is_halved(
    redis_client: redis.Redis,
) -> None:
    # Fixed windows: one sliding second can hold two windows' grants.
    lim, _ = limiter(redis_client)
    for _ in range(3):
        lim.acquire("heavy")
    key = sent_key(lim, "heavy")
    refused = max(score for _, score in redis_client.zrange(key, 0, -1, withscores=True))
    redis_client.zadd(key, {f"other-{i}": refused - 50 - 10 * i for i in range(8)})
    lim.throttled("heavy", QPS)
    assert lim.rate("heavy") == pytest.approx(8 * bucket.BETA, rel=0.01)
    sent_since_cut(redis_client, lim, "heavy", 1_000_000)
    assert lim.rate("heavy") == pytest.approx(8)  # no ceiling learned: recovers to the share


def test_a_fresh_measure_replaces_the_one_held(redis_client: redis.Redis) -> None:
    # Real sleeps: a request records when it really goes out, after its slot.
    lim, _ = limiter(redis_client, sleep=time.sleep)
    for _ in range(5):  # four granted at 8/s, the fifth refused: held at 3.8/s
        lim.acquire("heavy")
    lim.throttled("heavy", QPS)
    assert lim.rate("heavy") == pytest.approx(4 * bucket.CEILING_MARGIN, rel=0.01)
    # At 3.8/s, three granted in the second before the next refusal: held at 2.85/s (a halving
    # of the rate and of the held ceiling would give 1.9/s).
    for _ in range(4):
        lim.acquire("heavy")
    lim.throttled("heavy", QPS)
    assert lim.rate("heavy") == pytest.approx(3 * bucket.CEILING_MARGIN, rel=0.01)


def test_after_a_pause_the_grants_are_not_a_measure_of_the_account(
    redis_client: redis.Redis,
) -> None:
    lim, _ = limiter(redis_client)
    lim.acquire("heavy")
    lim.acquire("heavy")
    # The refused request came long after the one before it (we had little to send, another
    # app used the account): one grant in that second says nothing of what we may send.
    key = sent_key(lim, "heavy")
    first, refused = (score for _, score in redis_client.zrange(key, 0, -1, withscores=True))
    redis_client.zremrangebyscore(key, first, first)
    redis_client.zadd(key, {"earlier": refused - 600})
    lim.throttled("heavy", QPS)
    assert lim.rate("heavy") == pytest.approx(8 * bucket.BETA, rel=0.01)


def test_a_named_limit_wins_over_the_grants_counted(redis_client: redis.Redis) -> None:
    lim, _ = limiter(redis_client)
    for _ in range(3):
        lim.acquire("heavy")
    lim.throttled("heavy", {"Retry-After": "1", "X-RateLimit-Type": "QPS",
                            "X-RateLimit-Limit": "4", "X-RateLimit-Remaining": "0"})
    assert lim.rate("heavy") == pytest.approx(4 * bucket.CEILING_MARGIN)


def test_refused_again_at_the_measured_rate_with_nothing_granted_it_is_halved(
    redis_client: redis.Redis,
) -> None:
    # An account allowed one request per two seconds: one granted in the second before the
    # first 429, then none before the next, sent at the measured 0.95/s after the first cut.
    lim, _ = limiter(redis_client)
    lim.acquire("heavy")
    lim.acquire("heavy")
    lim.throttled("heavy", QPS)
    assert lim.rate("heavy") == pytest.approx(bucket.CEILING_MARGIN)
    lim.acquire("heavy")  # its slot is past the Retry-After, so after the cut: not that burst
    lim.throttled("heavy", QPS)
    assert lim.rate("heavy") == pytest.approx(bucket.CEILING_MARGIN * bucket.BETA, rel=0.01)
    sent_since_cut(redis_client, lim, "heavy", 1_000_000)
    assert lim.rate("heavy") == pytest.approx(bucket.CEILING_MARGIN * bucket.BETA, rel=0.01)


def test_a_429_of_a_request_sent_before_the_cut_is_the_same_burst(
    redis_client: redis.Redis,
) -> None:
    lim, _ = limiter(redis_client)
    twin, _ = limiter(redis_client)
    twin.account_key = lim.account_key
    twin.acquire("heavy")  # sent, its answer still on the way
    time.sleep(0.005)  # (Redis's clock moves on: the cut comes after that send)
    lim.acquire("heavy")
    lim.throttled("heavy", QPS)
    after = lim.rate("heavy")
    assert after == pytest.approx(bucket.CEILING_MARGIN)  # one granted in the second before
    twin.throttled("heavy", QPS)  # refused in the same burst: that cut answers it too
    assert lim.rate("heavy") == pytest.approx(after)
