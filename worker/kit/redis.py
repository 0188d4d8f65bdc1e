"""The process's Redis clients (token cache, rate limiter, locks; the API's flood guard and
readiness checks), one per URL and timeouts, built lazily.

redis-py's connection pool is thread-safe but must not cross a fork (Celery prefork children
would share the parent's sockets), so a child drops the parent's clients and builds its own.
"""

from __future__ import annotations

import os
import threading

import redis

from worker.settings import get_settings

# Short socket timeouts: a Redis that hangs must turn into a retryable error quickly instead of
# holding a worker for the OAuth timeout.
SOCKET_TIMEOUT_SECONDS = 5.0

_Key = tuple[str, float, float]
_lock = threading.Lock()
_clients: dict[_Key, redis.Redis] = {}
_pid: int | None = None


def client_for(
    url: str,
    *,
    connect_timeout: float = SOCKET_TIMEOUT_SECONDS,
    socket_timeout: float = SOCKET_TIMEOUT_SECONDS,
) -> redis.Redis:
    """This process's client for ``url`` with these timeouts (one connection pool each)."""
    global _pid
    key = (url, connect_timeout, socket_timeout)
    client = _clients.get(key)
    if client is not None and _pid == os.getpid():
        return client
    with _lock:
        if _pid != os.getpid():
            _clients.clear()
            _pid = os.getpid()
        client = _clients.get(key)
        if client is None:
            client = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                health_check_interval=30,
            )
            _clients[key] = client
        return client


def get_redis() -> redis.Redis:
    """The worker's client, on ``AI_REDIS_URL``."""
    return client_for(get_settings().redis_url)


def reset_redis() -> None:
    """Forget the clients (after fork, or when a test changes AI_REDIS_URL)."""
    global _pid
    with _lock:
        ours = _pid == os.getpid()
        clients = list(_clients.values())
        _clients.clear()
        _pid = None
    for client in clients:
        if ours and _pid_is_ours(client):
            client.close()


def _pid_is_ours(client: redis.Redis) -> bool:
    pool = client.connection_pool
    return getattr(pool, "pid", os.getpid()) == os.getpid()


def _after_fork_in_child() -> None:
    global _pid, _lock
    _lock = threading.Lock()
    # Do not close: the sockets belong to the parent.
    _clients.clear()
    _pid = None


os.register_at_fork(after_in_child=_after_fork_in_child)
