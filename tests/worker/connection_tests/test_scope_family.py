"""A missing scope is named in the family the app uses, and no Zoom code is made up."""

from __future__ import annotations

from tests.factories import add_app_source
from tests.worker.helpers import new_test
from worker.connection_tests.service import run_connection_test
from worker.models import enums

GRANULAR = [
    "user:read:list_users:admin", "user:read:user:admin", "group:read:list_groups:admin",
    "group:read:list_members:admin", "report:read:user_activities:admin",
    "report:read:list_users:admin", "report:read:list_meetings:admin",
    "report:read:daily_usage:admin", "report:read:operation_logs:admin",
]


def test_a_granular_app_is_told_the_granular_scope_it_lacks(zoom) -> None:
    account = zoom.fake.account(0)
    app = account.add_app("s2s", scopes=GRANULAR)
    test = run_connection_test(new_test(add_app_source(account, app)), enqueue=False)

    assert test.status == enums.TestStatus.FAILED
    assert test.missing_scopes == ["report:read:list_meeting_participants:admin"]
    assert "report:read:list_meeting_participants:admin" in test.message
    assert "report:read:admin" not in test.message
    # Zoom answered every call: there is no Zoom code to report.
    assert test.zoom_error_code is None
    assert test.missing_optional_scopes == ["role:read:list_roles:admin",
                                            "role:read:list_members:admin"]


def test_a_classic_app_is_told_the_classic_scope_it_lacks(zoom) -> None:
    account = zoom.fake.account(0)
    app = account.add_app("s2s", scopes=["user:read:admin", "group:read:admin"])
    test = run_connection_test(new_test(add_app_source(account, app)), enqueue=False)

    assert test.status == enums.TestStatus.FAILED
    assert "report:read:admin" in test.missing_scopes
    assert test.zoom_error_code is None
