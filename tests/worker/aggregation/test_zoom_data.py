"""What Zoom sends that the faithful fake only gives when asked: custom attributes."""

from __future__ import annotations

from sqlmodel import select

from tests.worker.aggregation.test_service import new_run
from tests.worker.helpers import add_source, zoom
from worker.aggregation.service import run_aggregation
from worker.db import session_scope
from worker.models import RunStatus, ZoomUser

__all__ = ["zoom"]


def test_custom_attributes_are_asked_for_and_stored(zoom) -> None:
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    run = run_aggregation(new_run(source_id), enqueue=False)
    assert run.status == RunStatus.SUCCEEDED
    with session_scope() as session:
        attributes = session.exec(select(ZoomUser.custom_attributes).where(
            ZoomUser.source_id == source_id)).all()
    assert attributes and all(a and a[0]["key"] == "cbf_cost_center" for a in attributes)
    assert "item_warnings" not in run.details
