"""Worker-side behaviour the API needs before the worker's own modules land.

Each function first uses the worker's implementation when it exists and falls back to a
minimal one here. The lead can delete the fallbacks once ``worker.tokens.cache`` and
``worker.scheduling.service`` are merged (see the report on issue 6).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis
from croniter import croniter

from worker.models import Source

log = logging.getLogger("api.shims")

# Names the token cache module may give its "forget this source's token" function.
_INVALIDATE_NAMES = ("invalidate", "invalidate_source", "invalidate_token", "forget")


def _worker_function(module: str, names: tuple[str, ...]) -> Callable[..., Any] | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    for name in names:
        fn = getattr(mod, name, None)
        if callable(fn):
            return fn
    return None


def invalidate_cached_token(client: redis.Redis, source: Source) -> None:
    """After credentials change, the cached access token (and any pending rotated refresh
    token) of this source must not be used again: the next task fetches a fresh token."""
    fn = _worker_function("worker.tokens.cache", _INVALIDATE_NAMES)
    if fn is not None:
        fn(source.id)
        return
    # Fallback: every token-cache key names the source id; lock keys are left to their
    # owners' leases (deleting a held lock would let two refreshes run at once).
    try:
        for key in client.scan_iter(match=f"*{source.id}*", count=500):
            name = key.decode() if isinstance(key, bytes) else str(key)
            if "token" in name and "lock" not in name:
                client.delete(key)
    except redis.RedisError:
        # The new credentials_version already makes a stale cache entry detectable.
        log.warning("could not clear the token cache of source %s", source.id, exc_info=True)


def compute_next_runs(source: Source, now: datetime) -> None:
    """Set ``next_aggregation_at`` / ``next_activity_at`` after a schedule change."""
    fn = _worker_function("worker.scheduling.service", ("compute_next",))
    if fn is not None:
        fn(source, now)
        return
    tz = ZoneInfo(source.timezone or "UTC")
    local_now = now.astimezone(tz)
    for cron, attr in (
        (source.aggregation_cron, "next_aggregation_at"),
        (source.activity_cron, "next_activity_at"),
    ):
        if cron:
            setattr(source, attr, croniter(cron, local_now).get_next(datetime))
        else:
            # Empty means "the worker's default spread": beat fills it in on its next tick.
            setattr(source, attr, None)
