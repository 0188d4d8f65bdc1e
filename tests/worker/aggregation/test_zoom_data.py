"""What Zoom sends that the faithful fake only gives when asked: custom attributes."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from tests.factories import add_app_source
from tests.worker.aggregation.test_service import new_run
from tests.worker.helpers import Directory
from worker.aggregation.service import run_aggregation
from worker.db import session_scope
from worker.models import RunStatus, SyncRun, ZoomUser
from worker.zoom.errors import ZoomBadResponse


def test_custom_attributes_are_asked_for_and_stored(s2s: Directory, session: Session) -> None:
    run = s2s.aggregate()
    assert run.status == RunStatus.SUCCEEDED
    attributes = session.exec(select(ZoomUser.custom_attributes).where(
        ZoomUser.source_id == s2s.source_id)).all()
    assert attributes
    assert all(a and a[0]["key"] == "cbf_cost_center" for a in attributes)
    assert "item_warnings" not in run.details


def test_truncated_json_fails_the_run_in_words_that_match_and_name_the_page(zoom) -> None:
    account = zoom.fake.account(0)
    source_id = add_app_source(account, account.s2s_app)
    zoom.fake.set_faults(malformed_json_next=1, malformed_json_endpoint="/users")
    run_id = new_run(source_id)
    with pytest.raises(ZoomBadResponse):
        run_aggregation(run_id, enqueue=False)
    with session_scope() as session:
        run = session.get_one(SyncRun, run_id)
    assert run.status == RunStatus.FAILED
    message = run.error_message or ""
    assert "GET /users page 1" in message
    assert "malformed JSON" in message
    assert "failed" in message
    assert "retry" not in message
    assert str(source_id) in message
    assert str(run.tenant_id) in message
