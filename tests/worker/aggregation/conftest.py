"""The aggregation tests' source: a fake app's directory, aggregated by the plain body on the
rolled-back `session`."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from fakezoom.server import FakeZoomServer
from tests.worker.helpers import Directory


@pytest.fixture
def s2s(session: Session, fake_zoom: FakeZoomServer) -> Directory:
    account = fake_zoom.fake.account(0)
    return Directory(session, fake_zoom, account, account.s2s_app)
