"""Zoom's rules for report dates, in one place.

Sources: zoom-api.md "Endpoints" ("Report date ranges: one month at most per request, only within
the last six months (older: code 300)"), and Zoom's OpenAPI document: the ``from`` parameter of
``reportSignInSignOutActivities`` ("specify a monthly date range ... the API only provides one
month worth of data in one request. The specified date range should fall within the last six
months"), of ``reportUsers``, ``reportMeetings`` and ``reportOperationLogs`` ("should only be one
month"), and the descriptions of ``reportUsers`` / ``reportMeetings`` ("limited to a month and the
month should fall under the past six months"). ``reportDaily`` takes a whole ``year``/``month``.

Everything that picks report dates derives from here: the activity planner's windows, the
host-usage and daily-usage periods, the API's backfill validation and the backfill setting.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import Any

# Zoom keeps report data for six months.
REPORT_HORIZON_MONTHS = 6
# One day of slack: a window computed just before midnight UTC is not refused just after it.
HORIZON_SLACK = timedelta(days=1)


def add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _shortest_horizon_days() -> int:
    """Days in the shortest six months of any year (Sep 1 back to Mar 1 of a common year: 181),
    over a leap cycle, less the slack."""
    first = date(2023, 1, 1)
    days = (first + timedelta(days=i) for i in range(4 * 366))
    return min((d - add_months(d, -REPORT_HORIZON_MONTHS)).days for d in days) - HORIZON_SLACK.days


# A backfill of this many days is inside Zoom's horizon on every day of the year
# (worker.settings.activity_backfill_days has it as its maximum).
MAX_BACKFILL_DAYS = _shortest_horizon_days()


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def earliest_report_date(today: date) -> date:
    """The oldest ``from`` date Zoom accepts for reports on ``today`` (six months back, +1 day)."""
    return add_months(today, -REPORT_HORIZON_MONTHS) + HORIZON_SLACK


def earliest_report_month(today: date) -> date:
    """The first day of the oldest month that lies wholly inside the horizon: reports kept per
    calendar month (host usage from ``from`` = the 1st, ``/report/daily`` by year and month)
    can only ask for months from here on."""
    earliest = earliest_report_date(today)
    return earliest if earliest.day == 1 else month_end(earliest) + timedelta(days=1)


def earliest_report_time(now: datetime) -> datetime:
    """`earliest_report_date` as the start of that UTC day (for API windows)."""
    day = earliest_report_date(now.astimezone(UTC).date())
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def month_windows(start: date, end: date) -> list[tuple[date, date]]:
    """Split the inclusive range ``start..end`` into calendar-month windows (inclusive pairs), so
    no request spans more than Zoom's one month whatever the month's length.

    ``month_windows(date(2024, 1, 20), date(2024, 3, 5))`` ->
    ``[(Jan 20, Jan 31), (Feb 1, Feb 29), (Mar 1, Mar 5)]``. Empty when ``start > end``.
    """
    windows: list[tuple[date, date]] = []
    cursor = start
    while cursor <= end:
        stop = min(month_end(cursor), end)
        windows.append((cursor, stop))
        cursor = stop + timedelta(days=1)
    return windows


def window_params(window: tuple[date, date], **extra: Any) -> dict[str, Any]:
    """Query parameters of a report request for one window (``from``/``to`` inclusive)."""
    return {"from": window[0].isoformat(), "to": window[1].isoformat(), **extra}


def clamp_windows(
    start: date, last: date, today: date, *, whole_months: bool = False
) -> list[tuple[date, date]]:
    """The month windows of ``start..last`` that Zoom will answer on ``today``: nothing before
    the horizon (for per-month reports, nothing before its first whole month), nothing after
    today."""
    floor = earliest_report_month(today) if whole_months else earliest_report_date(today)
    return month_windows(max(start, floor), min(last, today))
