"""The process's Redis client (token cache, rate limiter, locks), built lazily from settings.

One client per process: redis-py's connection pool is thread-safe but must not cross a fork
(Celery prefork children would share the parent's sockets), so it is dropped in the child.
"""

from __future__ import annotations

import os
import threading

import redis

from worker.settings import get_settings

_lock = threading.Lock()
_client: redis.Redis | None = None
_pid: int | None = None

# Short socket timeouts: a Redis that hangs must turn into a retryable error quickly instead of
# holding a worker for the OAuth timeout.
SOCKET_TIMEOUT_SECONDS = 5.0


def get_redis() -> redis.Redis:
    global _client, _pid
    client = _client
    if client is not None and _pid == os.getpid():
        return client
    with _lock:
        if _client is None or _pid != os.getpid():
            _client = redis.Redis.from_url(
                get_settings().redis_url,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
                health_check_interval=30,
            )
            _pid = os.getpid()
        return _client


def reset_redis() -> None:
    """Forget the client (after fork, or when a test changes AI_REDIS_URL)."""
    global _client, _pid
    client, _client, _pid = _client, None, None
    if client is not None and _pid_is_ours(client):
        client.close()


def _pid_is_ours(client: redis.Redis) -> bool:
    pool = client.connection_pool
    return getattr(pool, "pid", os.getpid()) == os.getpid()


def _after_fork_in_child() -> None:
    global _client, _pid, _lock
    _lock = threading.Lock()
    # Do not close: the sockets belong to the parent.
    _client, _pid = None, None


os.register_at_fork(after_in_child=_after_fork_in_child)
