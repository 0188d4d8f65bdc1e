"""Zoom's published rate limits per plan (shared/zoom-api.md), the one table the limiter and the
daily budget both read. They are an upper bound: the account's real limits are shared with every
other app on it, which is why the limiter also learns from Zoom's answers (``bucket.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from worker.zoom.endpoints import Category

KEY_PREFIX = "ai:rl:"


@dataclass(frozen=True)
class CategoryLimit:
    per_second: float
    daily: int | None = None
    # Categories with the same daily group draw on one daily counter (Heavy + Resource on paid
    # plans); None with ``daily`` set means a counter of the category's own (Free plan).
    daily_group: str | None = None


_HR = "heavy+resource"
# https://developers.zoom.us/docs/commerce/rate-limits/, per account.
PLAN_LIMITS: dict[str, dict[Category, CategoryLimit]] = {
    "free": {
        Category.LIGHT: CategoryLimit(4, 6000),
        Category.MEDIUM: CategoryLimit(2, 2000),
        Category.HEAVY: CategoryLimit(1, 1000),
        Category.RESOURCE_INTENSIVE: CategoryLimit(10 / 60, 30000),
    },
    "pro": {
        Category.LIGHT: CategoryLimit(30),
        Category.MEDIUM: CategoryLimit(20),
        Category.HEAVY: CategoryLimit(10, 30000, _HR),
        Category.RESOURCE_INTENSIVE: CategoryLimit(10 / 60, 30000, _HR),
    },
    "business": {
        Category.LIGHT: CategoryLimit(80),
        Category.MEDIUM: CategoryLimit(60),
        Category.HEAVY: CategoryLimit(40, 60000, _HR),
        Category.RESOURCE_INTENSIVE: CategoryLimit(20 / 60, 60000, _HR),
    },
}
