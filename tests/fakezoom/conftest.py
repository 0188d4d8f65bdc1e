from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    import fakezoom  # noqa: F401
except ImportError:  # pytest run without the repo on sys.path (no editable install)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fakezoom.server import FakeZoomServer
from fakezoom.testing import running_fakezoom, small_config


@pytest.fixture
def fakezoom_server() -> Iterator[FakeZoomServer]:
    """A fresh small fake (one Pro account, 40 users, 10 days) on a free port."""
    with running_fakezoom(small_config(frozen_clock=True)) as server:
        yield server


@pytest.fixture(scope="module")
def shared_fakezoom() -> Iterator[FakeZoomServer]:
    """One fake per test module for read-only tests (rate limits off)."""
    with running_fakezoom(small_config(rate_limits_enabled=False, users=70)) as server:
        yield server
