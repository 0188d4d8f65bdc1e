"""The one schedule validator: the API schema, the CLI and the scheduler all use `check_cron`."""

from __future__ import annotations

import pytest

from worker.scheduling.cron import InvalidSchedule, check_cron, validate


@pytest.mark.parametrize(("expression", "says"), [
    ("61 * * * *", "the minute field '61' is not valid (allowed: 0-59)"),
    ("0 24 * * *", "the hour field '24'"),
    ("0 0 32 * *", "the day of month field '32'"),
    ("0 0 * 13 *", "the month field '13'"),
    ("0 0 * * 8", "the day of week field '8'"),
    ("* * * * * *", "has 6 field(s); a schedule has five"),
    ("@reboot", "has 1 field(s)"),
    ("0 0 31 2 *", "never fires"),
])
def test_a_bad_schedule_names_what_is_wrong(expression: str, says: str) -> None:
    with pytest.raises(InvalidSchedule) as info:
        check_cron(expression)
    assert says in str(info.value)


@pytest.mark.parametrize("expression", ["15 2 * * *", "*/5 * * * *", "0 9 * * MON-FRI",
                                        "0 0 1 JAN *", "  30 3 * * 0  ", ""])
def test_good_schedules_pass_stripped(expression: str) -> None:
    assert check_cron(expression) == expression.strip()


def test_validate_checks_the_time_zone_too() -> None:
    with pytest.raises(InvalidSchedule, match="unknown time zone 'Mars/Olympus'"):
        validate("15 2 * * *", "Mars/Olympus")
