"""Helpers for Zoom's paged lists and date-ranged reports.

Zoom's report endpoints take ``from``/``to`` dates (inclusive) spanning one month at most and
reaching back six months at most (code 300 otherwise). Windows here follow calendar months, so a
window never exceeds a month whatever the month's length, and cursors land on month boundaries.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from typing import Any

from worker.zoom.client import PAGE_SIZE, Page

__all__ = [
    "PAGE_SIZE",
    "Page",
    "earliest_report_date",
    "items_of",
    "month_windows",
    "window_params",
]

# Zoom keeps report data for six months; one day of slack so a window computed just before
# midnight UTC is not refused just after it.
REPORT_HORIZON_MONTHS = 6


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def month_windows(start: date, end: date) -> list[tuple[date, date]]:
    """Split the inclusive range ``start..end`` into calendar-month windows (inclusive pairs).

    ``month_windows(date(2024, 1, 20), date(2024, 3, 5))`` ->
    ``[(Jan 20, Jan 31), (Feb 1, Feb 29), (Mar 1, Mar 5)]``. Empty when ``start > end``.
    """
    windows: list[tuple[date, date]] = []
    cursor = start
    while cursor <= end:
        stop = min(_month_end(cursor), end)
        windows.append((cursor, stop))
        cursor = stop + timedelta(days=1)
    return windows


def window_params(window: tuple[date, date], **extra: Any) -> dict[str, Any]:
    """Query parameters of a report request for one window."""
    return {"from": window[0].isoformat(), "to": window[1].isoformat(), **extra}


def earliest_report_date(today: date) -> date:
    """The oldest ``from`` date Zoom accepts for reports on ``today`` (six months back, +1 day)."""
    month = today.month - REPORT_HORIZON_MONTHS
    year = today.year
    while month < 1:
        month += 12
        year -= 1
    day = min(today.day, calendar.monthrange(year, month)[1])
    return date(year, month, day) + timedelta(days=1)


def items_of(pages: Iterable[Page]) -> Iterator[dict[str, Any]]:
    """Flatten pages into items without keeping more than the current page."""
    for page in pages:
        yield from page.items
