"""Which rate-limit category each endpoint counts against, and which scopes it needs.

Categories come from the "Rate Limit Label" of each operation in Zoom's OpenAPI spec (see
shared/zoom/ZoomMeetingAPISpec.json). Paths are matched on the part after ``/v2``.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Category(StrEnum):
    LIGHT = "light"
    MEDIUM = "medium"
    HEAVY = "heavy"
    RESOURCE_INTENSIVE = "resource"


_SEG = r"[^/]+"
# Zoom's two families of scope names: classic (``report:read:admin``) and granular
# (``report:read:list_meeting_participants:admin``); zoom-api.md "Scopes": accept either.
CLASSIC = "classic"
GRANULAR = "granular"

# (pattern, category, classic scope names, granular scope names): any one name of either family
# grants the endpoint. Classic names from each operation's "Scopes:" line in Zoom's OpenAPI
# document; granular ones from zoom-api.md "Scopes" (Zoom's granular-scope reference).
_ENDPOINTS: list[tuple[re.Pattern[str], Category, tuple[str, ...], tuple[str, ...]]] = [
    (re.compile(r"^/users$"), Category.MEDIUM,
     ("user:read:admin",), ("user:read:list_users:admin",)),
    (re.compile(rf"^/users/{_SEG}$"), Category.LIGHT,
     ("user:read:admin", "user:read", "user_info:read"), ("user:read:user:admin",)),
    (re.compile(r"^/groups$"), Category.MEDIUM,
     ("group:read:admin",), ("group:read:list_groups:admin",)),
    (re.compile(rf"^/groups/{_SEG}/members$"), Category.MEDIUM,
     ("group:read:admin",), ("group:read:list_members:admin",)),
    (re.compile(r"^/roles$"), Category.MEDIUM,
     ("role:read:admin",), ("role:read:list_roles:admin",)),
    # getRoleInformation: Light in the spec. The granular name follows Zoom's pattern for one
    # object (user:read:user:admin), inferred rather than documented.
    (re.compile(rf"^/roles/{_SEG}$"), Category.LIGHT,
     ("role:read:admin",), ("role:read:role:admin",)),
    (re.compile(rf"^/roles/{_SEG}/members$"), Category.MEDIUM,
     ("role:read:admin",), ("role:read:list_members:admin",)),
    (re.compile(rf"^/accounts/{_SEG}/settings$"), Category.MEDIUM,
     ("account:read:admin",), ("account:read:settings:admin",)),
    (re.compile(r"^/report/activities$"), Category.HEAVY,
     ("report:read:admin",), ("report:read:user_activities:admin",)),
    (re.compile(r"^/report/users$"), Category.HEAVY,
     ("report:read:admin",), ("report:read:list_users:admin",)),
    (re.compile(rf"^/report/users/{_SEG}/meetings$"), Category.HEAVY,
     ("report:read:admin",), ("report:read:list_meetings:admin",)),
    (re.compile(rf"^/report/meetings/{_SEG}/participants$"), Category.HEAVY,
     ("report:read:admin",), ("report:read:list_meeting_participants:admin",)),
    (re.compile(r"^/report/daily$"), Category.HEAVY,
     ("report:read:admin",), ("report:read:daily_usage:admin",)),
    (re.compile(r"^/report/operationlogs$"), Category.HEAVY,
     ("report:read:admin",), ("report:read:operation_logs:admin",)),
]


def _normalise(path: str) -> str:
    path = "/" + path.split("?", 1)[0].strip("/")
    return path.removeprefix("/v2") or "/"


def category_for(path: str) -> Category:
    """The rate category of ``path``; unknown reports are Heavy, anything else unknown Medium
    (the cautious middle: overestimating costs throughput, underestimating costs 429s)."""
    path = _normalise(path)
    for pattern, category, _, _ in _ENDPOINTS:
        if pattern.match(path):
            return category
    return Category.HEAVY if path.startswith("/report/") else Category.MEDIUM


def scopes_for(path: str, family: str | None = None) -> tuple[str, ...]:
    """Scope names of which any one grants ``path``, classic first (empty when the path is not
    in the table); ``family`` ("classic" or "granular") keeps only that family's names."""
    path = _normalise(path)
    for pattern, _, classic, granular in _ENDPOINTS:
        if pattern.match(path):
            if family == CLASSIC:
                return classic
            if family == GRANULAR:
                return granular
            return classic + granular
    return ()


def has_scope_for(path: str, granted: list[str] | tuple[str, ...] | set[str]) -> bool:
    needed = scopes_for(path)
    return not needed or any(s in granted for s in needed)
