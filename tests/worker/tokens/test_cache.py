"""TokenCache against real Redis, in one process (the multi-process tests use fakezoom)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.tokens.cache import AccessToken, TokenCache, token_key
from worker.zoom.errors import TokenCacheUnavailable, ZoomAuthError


class CountingFetcher:
    def __init__(self, lifetime: float = 3600, delay: float = 0.0) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, source_id: str) -> AccessToken:
        with self._lock:
            self.calls += 1
            n = self.calls
        time.sleep(self.delay)
        return AccessToken(f"access-{source_id[:4]}-{n}-{'x' * 20}", time.time() + self.lifetime,
                           ["user:read:admin"], "https://api.zoom.us")


def make_cache(client: Any, fetcher: Callable[[str], AccessToken], **kw: Any) -> TokenCache:
    kw.setdefault("lease", 5)
    kw.setdefault("wait", 5)
    return TokenCache(client, fetcher, kw.pop("margin", 300), **kw)


def test_cold_cache_fetches_once_then_serves_from_redis(redis_client: redis.Redis) -> None:
    fetcher = CountingFetcher()
    cache = make_cache(redis_client, fetcher)
    sid = str(uuid.uuid4())
    first = cache.get_token(sid)
    assert cache.get_token(sid) == first
    assert fetcher.calls == 1
    ttl = redis_client.pttl(token_key(sid))
    assert 3600_000 - 300_000 - 5_000 < ttl <= 3600_000 - 300_000
    assert first.scopes == ["user:read:admin"]
    assert first.access_token not in repr(first)


def test_short_lived_tokens_keep_half_their_life(redis_client: redis.Redis) -> None:
    cache = make_cache(redis_client, CountingFetcher(lifetime=60))
    sid = str(uuid.uuid4())
    cache.get_token(sid)
    assert 25_000 < redis_client.pttl(token_key(sid)) <= 30_000


def test_threads_of_one_process_share_one_fetch(redis_client: redis.Redis) -> None:
    fetcher = CountingFetcher(delay=0.2)
    cache = make_cache(redis_client, fetcher)
    sid = str(uuid.uuid4())
    results: list[str] = []
    barrier = threading.Barrier(32)

    def worker() -> None:
        barrier.wait()
        results.append(cache.get_token(sid).access_token)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fetcher.calls == 1
    assert len(set(results)) == 1
    assert len(results) == 32


def test_invalidation_is_compare_and_delete(redis_client: redis.Redis) -> None:
    fetcher = CountingFetcher()
    cache = make_cache(redis_client, fetcher)
    sid = str(uuid.uuid4())
    old = cache.get_token(sid)
    assert cache.invalidate(sid, old) is True
    new = cache.get_token(sid)
    assert new != old
    assert fetcher.calls == 2
    # A slow worker reporting a 401 for the old token must not evict the new one.
    assert cache.invalidate(sid, old) is False
    assert cache.get_token(sid) == new
    assert fetcher.calls == 2
    assert cache.for_source(sid).invalidate(new) is True


def test_auth_refusal_is_shared_with_waiters_not_retried_by_each(
    redis_client: redis.Redis,
) -> None:
    calls = {"n": 0}

    def refusing(_source_id: str) -> AccessToken:
        calls["n"] += 1
        time.sleep(0.2)
        raise ZoomAuthError("refused", "invalid_client", 400, admin_message="check the secret")

    cache = make_cache(redis_client, refusing)
    sid = str(uuid.uuid4())
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            cache.get_token(sid)
        except ZoomAuthError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls["n"] == 1
    assert len(errors) == 8
    assert all(isinstance(e, ZoomAuthError) and e.code == "invalid_client" for e in errors)
    cache.forget(sid)
    with pytest.raises(ZoomAuthError):
        cache.get_token(sid)
    assert calls["n"] == 2


def test_waiter_that_times_out_does_not_call_zoom(redis_client: redis.Redis) -> None:
    fetcher = CountingFetcher()
    cache = make_cache(redis_client, fetcher, lease=30, wait=0.3)
    sid = str(uuid.uuid4())
    redis_client.set(f"ai:token:{sid}:lock", "someone-else", px=30_000)
    with pytest.raises(Exception, match="did not finish within") as info:
        cache.get_token(sid)
    assert getattr(info.value, "retryable", False)
    assert fetcher.calls == 0


def test_redis_down_is_a_retryable_cache_error() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2,
                         retry=Retry(NoBackoff(), 0))
    cache = make_cache(client, CountingFetcher())
    with pytest.raises(TokenCacheUnavailable) as info:
        cache.get_token("s")
    assert info.value.retryable
    with pytest.raises(TokenCacheUnavailable):
        cache.invalidate("s", "tok")
