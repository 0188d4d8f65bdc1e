"""The connection test's task shell: a failed test ends the task in a failure state."""

from __future__ import annotations

import pytest

from tests.factories import make_source, make_tenant
from worker.connection_tests.tasks import connection_test_task
from worker.db import session_scope
from worker.models import ConnectionTest
from worker.models import TestStatus as TS
from worker.runs.lifecycle import RecordedFailure


def _recorded(status: TS, code: str | None) -> str:
    with session_scope() as session:
        source = make_source(session, make_tenant(session))
        test = ConnectionTest(tenant_id=source.tenant_id, source_id=source.id, status=status,
                              zoom_error_code=code, message="scope report:read:admin missing")
        session.add(test)
        session.flush()
        return str(test.id)


@pytest.mark.usefixtures("clean_db")
def test_a_failed_test_fails_the_task_so_flower_counts_it() -> None:
    # A redelivery of a test already recorded as failed answers from the record.
    result = connection_test_task.apply(args=[_recorded(TS.FAILED, "4711")])
    assert result.failed()
    assert isinstance(result.result, RecordedFailure)
    assert str(result.result) == "connection test failed: 4711"
    assert connection_test_task.throws == (RecordedFailure,)  # logged as expected, no traceback


@pytest.mark.usefixtures("clean_db")
def test_a_passed_test_succeeds() -> None:
    result = connection_test_task.apply(args=[_recorded(TS.SUCCEEDED, None)])
    assert result.successful()
    assert result.result == "succeeded: ok"


@pytest.mark.usefixtures("clean_db")
def test_a_failure_without_a_code_still_says_where_to_look() -> None:
    result = connection_test_task.apply(args=[_recorded(TS.FAILED, None)])
    assert str(result.result) == "connection test failed: see the test"
