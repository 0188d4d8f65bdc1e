"""Helpers for Zoom's paged lists; the report-date rules live in `worker.zoom.reports` (kept
importable from here for existing callers)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from worker.zoom.client import PAGE_SIZE, Page
from worker.zoom.reports import (
    REPORT_HORIZON_MONTHS,
    earliest_report_date,
    month_windows,
    window_params,
)

__all__ = [
    "PAGE_SIZE",
    "REPORT_HORIZON_MONTHS",
    "Page",
    "earliest_report_date",
    "items_of",
    "month_windows",
    "window_params",
]


def items_of(pages: Iterable[Page]) -> Iterator[dict[str, Any]]:
    """Flatten pages into items without keeping more than the current page."""
    for page in pages:
        yield from page.items
