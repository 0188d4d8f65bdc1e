"""Four worker processes paging one Zoom account share its rate limit: no 429 from the fake,
and most of the budget used."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest
import redis
from sqlalchemy.engine import Engine

from fakezoom.server import FakeZoomServer
from fakezoom.testing import running_fakezoom
from tests.env import settings_pointed_at
from tests.factories import add_app_source
from tests.worker.zoom import harness

pytestmark = pytest.mark.slow

PROCESSES = 4
# The fake's Medium limit on Pro is 20/s; scaled by 0.5 it allows 10 requests per second.
FAKE_SCALE = 0.5
FAKE_LIMIT = 10
SHARE = 0.9
SECONDS = 3.0


@pytest.fixture
def server(redis_client: redis.Redis, clean_db: Engine) -> Iterator[FakeZoomServer]:
    with running_fakezoom(users=30, days=1, rate_scale=FAKE_SCALE) as srv, \
            settings_pointed_at(srv), harness.catching_logs() as logs:
        yield srv
        harness.assert_no_secret_logged(logs, harness.known_secrets(srv))


def test_four_processes_share_one_account_budget_without_429(
    server: FakeZoomServer, clean_db: Engine
) -> None:
    sid = add_app_source(server.fake.account(0), server.fake.account(0).s2s_app)
    barrier = f"barrier:{uuid.uuid4().hex}"
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=ctx) as pool:
        for f in [pool.submit(harness.warm_up) for _ in range(PROCESSES)]:
            f.result(timeout=120)
        server.fake.reset_stats()
        server.fake.reset_rate_limits()
        futures = [pool.submit(harness.pager_child, barrier, PROCESSES, str(sid), FAKE_LIMIT,
                               SHARE, SECONDS) for _ in range(PROCESSES)]
        results = [f.result(timeout=120) for f in futures]
    stats = server.fake.stats()
    assert stats["rate_limited_total"] == 0
    assert sum(r[1] for r in results) == 0
    assert all(r[0] > 0 for r in results)  # every process got its turns
    pages = sum(r[0] for r in results)
    # Requests per second between the first and the last answer, over all four processes.
    elapsed = max(r[3] for r in results) - min(r[2] for r in results)
    achieved = (pages - 1) / elapsed
    assert achieved >= 0.85 * FAKE_LIMIT, (pages, elapsed)
