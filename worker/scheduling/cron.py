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


# The five fields beat honours, with their ranges (croniter also takes seconds and years).
FIELDS = (("minute", "0-59"), ("hour", "0-23"), ("day of month", "1-31"), ("month", "1-12"),
          ("day of week", "0-7 or SUN-SAT"))


def check_cron(expression: str) -> str:
    """The one validator of schedules (API schema, CLI and scheduler): the expression stripped,
    or `InvalidSchedule` naming the field that is wrong. Empty means the default schedule."""
    expression = expression.strip()
    if not expression:
        return expression
    parts = expression.split()
    if len(parts) != len(FIELDS):
        raise InvalidSchedule(
            f"{expression!r} has {len(parts)} field(s); a schedule has five "
            "(minute hour day-of-month month day-of-week), e.g. '15 2 * * *'")
    for index, ((name, allowed), part) in enumerate(zip(FIELDS, parts, strict=True)):
        alone = " ".join(part if i == index else "*" for i in range(len(FIELDS)))
        if not _parses(alone):
            raise InvalidSchedule(
                f"{expression!r}: the {name} field {part!r} is not valid (allowed: {allowed})")
    # Each field can be fine and the whole never fire ("0 0 31 2 *"): ask for a firing.
    if not _parses(expression, fire=True):
        raise InvalidSchedule(f"{expression!r} never fires")
    return expression


def _parses(expression: str, fire: bool = False) -> bool:
    try:
        if not croniter.is_valid(expression):
            return False
        if fire:
            croniter(expression, datetime(2026, 1, 1, tzinfo=UTC)).get_next(datetime)
    except Exception:  # croniter raises assorted types on odd input
        return False
    return True


def validate(expression: str, timezone: str = "UTC") -> None:
    """Refuse a schedule (cron and time zone) with a message naming the problem."""
    zone(timezone)
    check_cron(expression)


def next_fire(expression: str, timezone: str, after: datetime) -> datetime:
    """The first firing strictly after `after`, in UTC. Local wall-clock semantics: "0 9 * * *"
    in Europe/Paris is 09:00 Paris time on both sides of a DST change."""
    validate(expression, timezone)
    local = after.astimezone(zone(timezone))
    fired: datetime = croniter(expression, local).get_next(datetime)
    return fired.astimezone(UTC)
