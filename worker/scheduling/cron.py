"""Cron expressions evaluated in a source's own time zone, and the default spread.

Default schedules fire daily at a minute derived from the source id, so a thousand tenants do not
all hit Zoom (and our workers) at the same second.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

# Local hour of the default schedules: aggregation first, so activity of new users correlates.
DEFAULT_HOURS = {"aggregation": 1, "activity": 3}


class InvalidSchedule(ValueError):
    """A cron expression or time zone the scheduler cannot use; the message says which."""


def default_cron(source_id: uuid.UUID, kind: str) -> str:
    minute = int(hashlib.sha256(f"{source_id}:{kind}".encode()).hexdigest(), 16) % 60
    return f"{minute} {DEFAULT_HOURS[kind]} * * *"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(f"unknown time zone {name!r}") from None


def validate(expression: str, timezone: str = "UTC") -> None:
    """For the API: refuse a schedule before it is stored, with a message naming the problem."""
    zone(timezone)
    if expression and not croniter.is_valid(expression):
        raise InvalidSchedule(f"invalid cron expression {expression!r}")


def next_fire(expression: str, timezone: str, after: datetime) -> datetime:
    """The first firing strictly after `after`, in UTC. Local wall-clock semantics: "0 9 * * *"
    in Europe/Paris is 09:00 Paris time on both sides of a DST change."""
    validate(expression, timezone)
    local = after.astimezone(zone(timezone))
    fired: datetime = croniter(expression, local).get_next(datetime)
    return fired.astimezone(UTC)
