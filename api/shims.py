"""Worker-side behaviour the API triggers when an admin changes a source.

``compute_next_runs`` is imported lazily because ``worker.scheduling`` was not committed when
this was written; once it is, the lead can call ``compute_next`` directly.
"""

from __future__ import annotations

import importlib
import logging
from datetime import datetime

import redis

from worker.models import Source
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
    enabled flags: the worker's ``compute_next`` (None unless the source is active)."""
    try:
        service = importlib.import_module("worker.scheduling.service")
    except ImportError:
        # Without the scheduler there is nothing to fire; beat recomputes when it lands.
        source.next_aggregation_at = source.next_activity_at = None
        return
    service.compute_next(source, now)
