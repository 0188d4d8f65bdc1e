"""Starting work from the API: the sources service's refusals, answered as problems.

The service (`worker.sources.service`) creates and commits the row, enqueues it, and marks it
when the broker refuses; here a disabled source becomes 409 and an unreachable broker 503.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from api.errors import Conflict, ServiceUnavailable
from worker.sources.service import QueueUnavailable, SourceDisabled

log = logging.getLogger("api.queueing")


@contextmanager
def starting_work() -> Iterator[None]:
    """Map the service's refusals to start a connection test or a run to problems."""
    try:
        yield
    except SourceDisabled:
        raise Conflict("the source is disabled: enable it first") from None
    except QueueUnavailable as exc:
        log.warning("broker unavailable; %s %s not enqueued", type(exc.row).__name__,
                    exc.row.id, exc_info=exc.cause)
        raise ServiceUnavailable(
            "the task queue is unreachable; nothing was started, try again shortly",
            checks={"broker": "unreachable"},
        ) from None
