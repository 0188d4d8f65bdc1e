"""Worker-side effects of an admin's change to a source: its cached token and its schedule.

The rules live in the worker (``worker.tokens``, ``worker.scheduling``); these wrappers only
adapt them to the API (best effort on Redis, one call site per effect).
"""

from __future__ import annotations

import logging
from datetime import datetime

import redis

from worker.models import Source
from worker.scheduling.service import compute_next
from worker.tokens.cache import error_key, token_key
from worker.tokens.credentials import pending_key

log = logging.getLogger("api.shims")


def invalidate_cached_token(client: redis.Redis, source: Source) -> None:
    """After credentials change, drop the source's cached access token, its remembered auth
    refusal and any pending rotated refresh token, so the next task starts from the new
    credentials. The refresh lock is left to its lease: deleting a held lock would let two
    refreshes run at once."""
    sid = str(source.id)
    try:
        client.delete(token_key(sid), error_key(sid), pending_key(sid))
    except redis.RedisError:
        # The bumped credentials_version still makes a stale pending token detectable, and a
        # stale access token fails with 401, which evicts it.
        log.warning("could not clear the token cache of source=%s", sid, exc_info=True)


def compute_next_runs(source: Source, now: datetime) -> None:
    """Set ``next_aggregation_at`` / ``next_activity_at`` after a change of schedule, status or
    enabled flags: the scheduler's own rule (None unless the source is active)."""
    compute_next(source, now)
