"""A pinned clock for the tests whose answer depends on "today".

`pinned_clock` runs a test once at each instant where date arithmetic tends to break: seconds
after a month starts, seconds before a year ends, and a leap day. The clock ticks from there, so
timeouts and TTLs still pass. It pins this process only (time-machine patches the interpreter's
clock): worker subprocesses keep the real date, so use it on in-process tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import time_machine

BOUNDARIES = {
    "month-start": dt.datetime(2026, 12, 1, 0, 0, 30, tzinfo=dt.UTC),
    "year-end": dt.datetime(2026, 12, 31, 23, 59, 30, tzinfo=dt.UTC),
    "leap-day": dt.datetime(2028, 2, 29, 12, 0, tzinfo=dt.UTC),
}


@pytest.fixture(params=list(BOUNDARIES.values()), ids=list(BOUNDARIES))
def pinned_clock(request: pytest.FixtureRequest) -> Iterator[dt.datetime]:
    """The instant this run of the test starts at (the clock ticks on from it)."""
    with time_machine.travel(request.param, tick=True):
        yield request.param
