"""Fixtures of the run-lifecycle fault tests: a small fake Zoom account and its source."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakezoom.server import FakeZoomServer
from tests.env import settings_pointed_at
from tests.factories import add_app_source as add_source
from tests.worker.helpers import fake_config, worker_env
from tests.worker.runs.harness import Proc, fault_env, processes
from worker.db import session_scope
from worker.models import Source


@pytest.fixture
def fake(clean_db: Any, redis_client: Any) -> Iterator[FakeZoomServer]:  # noqa: ARG001 - requested for its side effect
    config = fake_config(users=25, days=6, accounts=1)
    with FakeZoomServer(config) as server, settings_pointed_at(server):
        yield server


@pytest.fixture
def source(fake: FakeZoomServer) -> tuple[uuid.UUID, uuid.UUID]:
    """(tenant id, source id) of the account's server-to-server app, active."""
    account = fake.fake.account(0)
    source_id = add_source(account, account.s2s_app, status="active")
    with session_scope() as session:
        return session.get_one(Source, source_id).tenant_id, source_id


@pytest.fixture
def start(fake: FakeZoomServer, tmp_path: Path) -> Iterator[Any]:
    with processes(fault_env(worker_env(fake)), tmp_path) as start_proc:
        yield start_proc


__all__ = ["Proc"]
