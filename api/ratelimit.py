"""Per-key flood guard: a fixed window counted in Redis (one INCR + EXPIRE per request).

A fixed window is enough here: it only has to stop a runaway script from hammering Postgres,
not shape traffic precisely (Zoom's own limits are enforced in the worker's token bucket).
Default 600 requests a minute per key (10/s sustained): far above what an admin or a sync
job needs, since bulk endpoints take thousands of rows per call. Override with the setting
``AI_API_RATE_LIMIT_PER_MINUTE``, or per app via ``create_app(rate_limit=...)``.

When Redis is unreachable the guard lets requests through: being unable to count must not
take the API down (``/readyz`` reports Redis separately).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from api.errors import RateLimited

log = logging.getLogger("api.ratelimit")

DEFAULT_LIMIT = 600
DEFAULT_WINDOW_SECONDS = 60
_KEY = "ai:api:ratelimit:{key_id}:{window}"


@dataclass(frozen=True)
class RateLimit:
    limit: int = DEFAULT_LIMIT
    window_seconds: int = DEFAULT_WINDOW_SECONDS

    def check(self, client: redis.Redis, key_id: str, now: float | None = None) -> None:
        """Count one request for ``key_id``; raise RateLimited once the window is full."""
        now = time.time() if now is None else now
        window = int(now // self.window_seconds)
        name = _KEY.format(key_id=key_id, window=window)
        try:
            pipe = client.pipeline()
            pipe.incr(name)
            pipe.expire(name, self.window_seconds + 1)
            count = int(pipe.execute()[0])
        except redis.RedisError:
            log.warning("rate limiter unavailable; request allowed", exc_info=True)
            return
        if count > self.limit:
            retry_after = max(1, int((window + 1) * self.window_seconds - now))
            raise RateLimited(retry_after)
