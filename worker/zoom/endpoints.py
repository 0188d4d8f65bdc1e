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

# (pattern, category, scopes: any of the classic or granular names satisfies the endpoint)
_ENDPOINTS: list[tuple[re.Pattern[str], Category, tuple[str, ...]]] = [
    (re.compile(r"^/users$"), Category.MEDIUM,
     ("user:read:admin", "user:read:list_users:admin")),
    (re.compile(rf"^/users/{_SEG}$"), Category.LIGHT,
     ("user:read:admin", "user:read", "user_info:read", "user:read:user:admin")),
    (re.compile(r"^/groups$"), Category.MEDIUM,
     ("group:read:admin", "group:read:list_groups:admin")),
    (re.compile(rf"^/groups/{_SEG}/members$"), Category.MEDIUM,
     ("group:read:admin", "group:read:list_members:admin")),
    (re.compile(r"^/roles$"), Category.MEDIUM,
     ("role:read:admin", "role:read:list_roles:admin")),
    (re.compile(rf"^/roles/{_SEG}/members$"), Category.MEDIUM,
     ("role:read:admin", "role:read:list_members:admin")),
    (re.compile(rf"^/accounts/{_SEG}/settings$"), Category.MEDIUM,
     ("account:read:admin", "account:read:settings:admin")),
    (re.compile(r"^/report/activities$"), Category.HEAVY,
     ("report:read:admin", "report:read:user_activities:admin")),
    (re.compile(r"^/report/users$"), Category.HEAVY,
     ("report:read:admin", "report:read:list_users:admin")),
    (re.compile(rf"^/report/users/{_SEG}/meetings$"), Category.HEAVY,
     ("report:read:admin", "report:read:list_meetings:admin")),
    (re.compile(rf"^/report/meetings/{_SEG}/participants$"), Category.HEAVY,
     ("report:read:admin", "report:read:list_meeting_participants:admin")),
    (re.compile(r"^/report/daily$"), Category.HEAVY,
     ("report:read:admin", "report:read:daily_usage:admin")),
    (re.compile(r"^/report/operationlogs$"), Category.HEAVY,
     ("report:read:admin", "report:read:operation_logs:admin")),
]


def _normalise(path: str) -> str:
    path = "/" + path.split("?", 1)[0].strip("/")
    return path.removeprefix("/v2") or "/"


def category_for(path: str) -> Category:
    """The rate category of ``path``; unknown reports are Heavy, anything else unknown Medium
    (the cautious middle: overestimating costs throughput, underestimating costs 429s)."""
    path = _normalise(path)
    for pattern, category, _ in _ENDPOINTS:
        if pattern.match(path):
            return category
    return Category.HEAVY if path.startswith("/report/") else Category.MEDIUM


def scopes_for(path: str) -> tuple[str, ...]:
    """Scope names of which any one grants ``path`` (empty when the path is not in the table)."""
    path = _normalise(path)
    for pattern, _, scopes in _ENDPOINTS:
        if pattern.match(path):
            return scopes
    return ()


def has_scope_for(path: str, granted: list[str] | tuple[str, ...] | set[str]) -> bool:
    needed = scopes_for(path)
    return not needed or any(s in granted for s in needed)
