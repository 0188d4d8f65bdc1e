"""AccountLimiter against real Redis with a recording sleep (no real waiting)."""

from __future__ import annotations

import uuid

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.ratelimit.bucket import PLAN_LIMITS, AccountLimiter, CategoryLimit
from worker.zoom.endpoints import Category
from worker.zoom.errors import TokenCacheUnavailable, ZoomRateLimited


def limiter(client: redis.Redis, **kw: object) -> tuple[AccountLimiter, list[float]]:
    slept: list[float] = []
    lim = AccountLimiter(client, f"acct-{uuid.uuid4().hex[:8]}", sleep=slept.append,
                         **kw)  # type: ignore[arg-type]
    return lim, slept


def test_callers_are_spaced_at_one_over_rate_times_share(redis_client: redis.Redis) -> None:
    lim, slept = limiter(redis_client, plan="pro", share=0.5)  # heavy: 10/s * 0.5 = 5/s
    for _ in range(5):
        lim.acquire("heavy")
    assert len(slept) == 4  # the first goes at once
    for i, wait in enumerate(slept, start=1):
        assert 0.2 * i - 0.05 <= wait <= 0.2 * i + 0.001


def test_categories_and_accounts_are_independent(redis_client: redis.Redis) -> None:
    lim, slept = limiter(redis_client)
    other = AccountLimiter(redis_client, "someone-else", sleep=slept.append)
    lim.acquire("heavy")
    lim.acquire("light")
    other.acquire("heavy")
    assert slept == []


def test_a_wait_over_the_bound_raises_and_takes_nothing(redis_client: redis.Redis) -> None:
    lim, slept = limiter(redis_client, limits={Category.MEDIUM: CategoryLimit(1)})
    lim.acquire("medium")
    with pytest.raises(ZoomRateLimited) as info:
        lim.acquire("medium", max_wait=0.5)
    assert not info.value.daily
    assert info.value.retry_after
    assert info.value.retry_after > 0.5
    lim.acquire("medium", max_wait=2)  # the refused call reserved nothing
    assert len(slept) == 1
    assert slept[0] <= 1.0


def test_drain_makes_every_worker_wait(redis_client: redis.Redis) -> None:
    lim, slept = limiter(redis_client)
    twin = AccountLimiter(redis_client, lim.account_key, sleep=slept.append)
    lim.drain("light", 3)
    twin.acquire("light")
    assert slept
    assert 2.9 <= slept[0] <= 3.0


def test_heavy_and_resource_share_the_daily_cap_on_paid_plans(
    redis_client: redis.Redis,
) -> None:
    limits = {Category.HEAVY: CategoryLimit(1000, 3, "hr"),
              Category.RESOURCE_INTENSIVE: CategoryLimit(1000, 3, "hr"),
              Category.LIGHT: CategoryLimit(1000)}
    lim, _ = limiter(redis_client, limits=limits)
    lim.acquire("heavy")
    lim.acquire("resource")
    lim.acquire("heavy")
    with pytest.raises(ZoomRateLimited) as info:
        lim.acquire("resource")
    assert info.value.daily
    assert info.value.retry_after
    assert info.value.retry_after <= 86400
    lim.acquire("light")
    assert lim.daily_used("heavy") == 3


def test_free_plan_daily_caps_are_per_category(redis_client: redis.Redis) -> None:
    free = PLAN_LIMITS["free"]
    assert free[Category.LIGHT].daily == 6000
    assert free[Category.LIGHT].daily_group is None
    limits = {Category.LIGHT: CategoryLimit(1000, 1), Category.MEDIUM: CategoryLimit(1000, 1)}
    lim, _ = limiter(redis_client, plan="free", limits=limits)
    lim.acquire("light")
    lim.acquire("medium")
    with pytest.raises(ZoomRateLimited):
        lim.acquire("light")


def test_share_scales_the_daily_cap(redis_client: redis.Redis) -> None:
    lim, _ = limiter(redis_client, share=0.5,
                     limits={Category.HEAVY: CategoryLimit(1000, 4, "hr")})
    lim.acquire("heavy")
    lim.acquire("heavy")
    with pytest.raises(ZoomRateLimited):
        lim.acquire("heavy")


def test_plan_table_matches_zoom() -> None:
    pro, business = PLAN_LIMITS["pro"], PLAN_LIMITS["business"]
    assert (pro[Category.LIGHT].per_second, pro[Category.MEDIUM].per_second,
            pro[Category.HEAVY].per_second) == (30, 20, 10)
    assert pro[Category.HEAVY].daily == pro[Category.RESOURCE_INTENSIVE].daily == 30000
    assert business[Category.HEAVY].daily == 60000
    assert business[Category.RESOURCE_INTENSIVE].per_second == pytest.approx(20 / 60)


def test_redis_down_is_retryable() -> None:
    down = redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    lim = AccountLimiter(down, "a")
    with pytest.raises(TokenCacheUnavailable):
        lim.acquire("light")
