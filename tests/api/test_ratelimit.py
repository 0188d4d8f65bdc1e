"""The flood guard's window, against real Redis."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from api.errors import RateLimited
from api.ratelimit import RateLimit


def test_the_window_resets_and_retry_after_points_at_its_end(redis_client: Any) -> None:
    guard = RateLimit(limit=2, window_seconds=60)
    guard.check(redis_client, "k", now=120.0)
    guard.check(redis_client, "k", now=130.0)
    with pytest.raises(RateLimited) as exc:
        guard.check(redis_client, "k", now=170.0)
    assert exc.value.retry_after == 10
    guard.check(redis_client, "k", now=180.0)  # next window
    assert 0 < redis_client.ttl("ai:api:ratelimit:k:3") <= 61


def test_requests_pass_when_redis_is_unreachable() -> None:
    # A real refused connection (port 1): counting is impossible, the API stays up.
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    RateLimit(limit=0).check(down, "k")
