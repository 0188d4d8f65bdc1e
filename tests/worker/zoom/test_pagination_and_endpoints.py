from __future__ import annotations

from datetime import date, timedelta

from worker.zoom.endpoints import Category, category_for, has_scope_for, scopes_for
from worker.zoom.pagination import earliest_report_date, month_windows, window_params


def test_month_windows_follow_calendar_months_inclusively() -> None:
    assert month_windows(date(2024, 1, 20), date(2024, 3, 5)) == [
        (date(2024, 1, 20), date(2024, 1, 31)),
        (date(2024, 2, 1), date(2024, 2, 29)),
        (date(2024, 3, 1), date(2024, 3, 5)),
    ]


def test_month_windows_single_day_and_empty() -> None:
    assert month_windows(date(2024, 5, 5), date(2024, 5, 5)) == [(date(2024, 5, 5),) * 2]
    assert month_windows(date(2024, 5, 6), date(2024, 5, 5)) == []


def test_month_windows_cover_every_day_once_and_never_exceed_a_month() -> None:
    start, end = date(2023, 11, 17), date(2024, 12, 31)
    windows = month_windows(start, end)
    days = [w[0] + timedelta(days=i) for w in windows for i in range((w[1] - w[0]).days + 1)]
    assert days == [start + timedelta(days=i) for i in range((end - start).days + 1)]
    assert all((b - a).days < 31 and a.month == b.month for a, b in windows)


def test_window_params_and_report_horizon() -> None:
    assert window_params((date(2024, 1, 1), date(2024, 1, 31)), type="active") == {
        "from": "2024-01-01", "to": "2024-01-31", "type": "active"}
    assert earliest_report_date(date(2024, 8, 31)) == date(2024, 3, 1)
    assert earliest_report_date(date(2024, 3, 15)) == date(2023, 9, 16)


def test_categories_match_zoom_labels() -> None:
    assert category_for("/users") is Category.MEDIUM
    assert category_for("/v2/users/me") is Category.LIGHT
    assert category_for("/groups/g1/members") is Category.MEDIUM
    assert category_for("/report/meetings/%252Fab/participants") is Category.HEAVY
    assert category_for("/report/something-new") is Category.HEAVY
    assert category_for("/unknown") is Category.MEDIUM


def test_scopes_accept_classic_or_granular_names() -> None:
    assert "role:read:admin" in scopes_for("/roles")
    assert has_scope_for("/roles", ["role:read:list_roles:admin"])
    assert not has_scope_for("/roles", ["user:read:admin"])
    assert has_scope_for("/not-in-table", [])
