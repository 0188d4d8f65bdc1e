"""The composition root: Zoom clients built from settings, a source row and shared plumbing.

`worker.zoom` knows HTTP and Zoom, `worker.tokens` the token cache, `worker.ratelimit` the
account buckets; none of them knows the others' storage. Here they are put together: the
services ask for `client_for_source(source_id)` and get a client that shares tokens and the
rate limit with every other process working for the same Zoom account.

Per process (rebuilt after fork): one pooled ``httpx.Client``, one Redis client
(``worker.kit.redis``), one ``TokenCache``. Per call: a light ``ZoomClient`` over those, with
the source's shared token handle and the rate limiter of its Zoom *account* (the source id until
the account id is known), at the plan's limits times the source's share.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import select
from sqlmodel import col

from worker.db import get_engine
from worker.kit.redis import get_redis
from worker.models.tenancy import Source
from worker.ratelimit.bucket import AccountLimiter
from worker.settings import get_settings
from worker.tokens.cache import AccessToken, TokenCache
from worker.tokens.credentials import OAuthClient, SourceTokenFetcher, forget_source_credentials
from worker.zoom.client import ZoomClient
from worker.zoom.errors import ZoomNotFound

_lock = threading.Lock()
_pid: int | None = None
_http: httpx.Client | None = None
_cache: TokenCache | None = None


def _reset_after_fork() -> None:
    global _pid, _http, _cache, _lock
    # The parent's sockets are not ours to close.
    _pid, _http, _cache, _lock = None, None, None, threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def _ensure() -> tuple[httpx.Client, TokenCache]:
    global _pid, _http, _cache
    with _lock:
        if _pid != os.getpid() or _http is None or _cache is None:
            settings = get_settings()
            _http = httpx.Client(
                timeout=settings.zoom_timeout_seconds,
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
                headers={"User-Agent": "activity-insights-zoom"},
            )
            redis_client = get_redis()
            oauth = OAuthClient(_http, settings.zoom_oauth_url, settings.zoom_timeout_seconds)
            fetcher = SourceTokenFetcher(get_engine(), redis_client, oauth)
            _cache = TokenCache(redis_client, fetcher, settings.token_refresh_margin_seconds)
            _pid = os.getpid()
        return _http, _cache


def get_http() -> httpx.Client:
    return _ensure()[0]


def get_token_cache() -> TokenCache:
    return _ensure()[1]


def reset() -> None:
    """Drop the per-process objects (tests that change settings between cases)."""
    global _pid, _http, _cache
    with _lock:
        if _http is not None and _pid == os.getpid():
            _http.close()
        _pid, _http, _cache = None, None, None


@dataclass(frozen=True)
class SourceLimits:
    account_key: str
    plan: str
    share: float


def _source_limits(source_id: uuid.UUID) -> SourceLimits:
    stmt = select(col(Source.zoom_account_id), col(Source.plan), col(Source.rate_share)).where(
        col(Source.id) == source_id)
    with get_engine().connect() as conn:
        row = conn.execute(stmt).one_or_none()
    if row is None:
        raise ZoomNotFound(f"source {source_id} does not exist")
    account_id, plan, share = row
    return SourceLimits(
        account_key=account_id or f"source:{source_id}",
        plan=str(plan),
        share=float(share) if share else get_settings().rate_limit_share,
    )


def limiter_for_source(source_id: uuid.UUID) -> AccountLimiter:
    limits = _source_limits(source_id)
    return AccountLimiter(get_redis(), limits.account_key, limits.plan, limits.share,
                          max_wait=get_settings().zoom_deadline_seconds)


def client_for_source(source_id: uuid.UUID) -> ZoomClient:
    http, cache = _ensure()
    settings = get_settings()
    return ZoomClient(
        str(source_id), cache.for_source(str(source_id)), limiter_for_source(source_id), http,
        settings.zoom_api_url,
    )


def token_for_source(source_id: uuid.UUID) -> AccessToken:
    """The source's shared access token (``.scopes`` for the connection test's scope check)."""
    return get_token_cache().get_token(str(source_id))


def forget_source_tokens(source_id: uuid.UUID) -> None:
    """After an admin changed a source's credentials: drop its cached token and any remembered
    refusal, so the next call uses the new credentials at once (no Zoom call here)."""
    forget_source_credentials(get_redis(), str(source_id))
