"""The token cache and refresh-token rotation across real processes, against fakezoom served
over HTTP, real Redis and real Postgres."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
import redis
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from fakezoom.server import FakeZoomServer
from fakezoom.testing import get_token, running_fakezoom
from tests.env import settings_pointed_at
from tests.factories import add_app_source
from tests.worker.zoom import harness
from worker import clients
from worker.connection_tests.service import run_connection_test
from worker.kit.crypto import decrypt_json, encrypt_json
from worker.models import ConnectionTest, Source, SourceStatus, enums
from worker.tokens.cache import lock_key
from worker.tokens.credentials import (
    REAUTHORIZE_MESSAGE,
    RotationOutcomeUnknown,
    pending_key,
    rotation_unknown_message,
)
from worker.zoom.errors import ZoomAuthError

pytestmark = pytest.mark.slow

SPAWN = multiprocessing.get_context("spawn")
PROCESSES = 8
THREADS = 16


@pytest.fixture(scope="module")
def server() -> Iterator[FakeZoomServer]:
    with running_fakezoom(users=20, days=2) as srv, settings_pointed_at(srv):
        yield srv


@pytest.fixture(scope="module")
def pool(server: FakeZoomServer, database_url: str) -> Iterator[ProcessPoolExecutor]:  # noqa: ARG001 - requested so the fake and the test database exist before the workers spawn
    with ProcessPoolExecutor(PROCESSES, mp_context=SPAWN) as executor:
        pids = {f.result() for f in [executor.submit(harness.warm_up) for _ in range(PROCESSES)]}
        assert len(pids) >= 1
        yield executor


@pytest.fixture
def fake(server: FakeZoomServer, redis_client: redis.Redis, clean_db: Engine  # noqa: ARG001 - requested for its side effect
         ) -> Iterator[FakeZoomServer]:
    server.fake.reset_stats()
    server.fake.configure(s2s_single_token=False)
    server.fake.clear_faults()
    clients.reset()
    with harness.catching_logs() as logs:
        yield server
    harness.assert_no_secret_logged(logs, harness.known_secrets(server))


def _stored_refresh_token(engine: Engine, source_id: uuid.UUID) -> tuple[str, int, str]:
    with engine.connect() as conn:
        row = conn.execute(select(col(Source.credentials_ciphertext),
                                  col(Source.credentials_version), col(Source.status))
                           .where(col(Source.id) == source_id)).one()
    return str(decrypt_json(row[0])["refresh_token"]), int(row[1]), str(row[2])


def _stampede(pool: ProcessPoolExecutor, source_ids: list[uuid.UUID]) -> list[tuple[str, str]]:
    barrier = f"barrier:{uuid.uuid4().hex}"
    futures = [pool.submit(harness.stampede_child, barrier, PROCESSES,
                           [str(s) for s in source_ids], THREADS) for _ in range(PROCESSES)]
    results: list[tuple[str, str]] = []
    for f in futures:
        results.extend(f.result(timeout=120))
    return results


@pytest.mark.usefixtures("clean_db")
def test_stampede_on_one_cold_source_makes_exactly_one_token_request(
    fake: FakeZoomServer, pool: ProcessPoolExecutor
) -> None:
    sid = add_app_source(fake.fake.account(0), fake.fake.account(0).s2s_app)
    results = _stampede(pool, [sid])
    assert len(results) == PROCESSES * THREADS == 128
    assert len({token for _, token in results}) == 1
    assert harness.token_requests(fake) == {"200": 1}


@pytest.mark.usefixtures("clean_db")
def test_stampede_on_twenty_sources_makes_exactly_twenty_token_requests(
    fake: FakeZoomServer, pool: ProcessPoolExecutor
) -> None:
    account = fake.fake.account(0)
    apps = [account.add_app("s2s") for _ in range(20)]
    sids = [add_app_source(account, app) for app in apps]
    results = _stampede(pool, sids)
    assert len(results) == 128 * 20
    by_source: dict[str, set[str]] = {}
    for sid, token in results:
        by_source.setdefault(sid, set()).add(token)
    assert len(by_source) == 20
    assert all(len(t) == 1 for t in by_source.values())
    assert harness.token_requests(fake) == {"200": 20}
    for app in apps:
        assert harness.token_requests(fake, app.client_id) == {"200": 1}


@pytest.mark.usefixtures("clean_db")
def test_lock_holder_killed_mid_refresh_another_process_refreshes_after_the_lease(
    fake: FakeZoomServer, redis_client: redis.Redis
) -> None:
    sid = add_app_source(fake.fake.account(0), fake.fake.account(0).s2s_app)
    child = SPAWN.Process(target=harness.crash_child, args=(str(sid), "token_fetched", 2.0))
    child.start()
    child.join(60)
    assert child.exitcode == -9
    # The dead holder got a token from Zoom but never published it; its lock is still held.
    assert harness.token_requests(fake) == {"200": 1}
    assert redis_client.exists(lock_key(str(sid)))
    cache = clients.get_token_cache()
    cache.wait = 10
    token = clients.token_for_source(sid)
    assert token.scopes
    assert harness.token_requests(fake) == {"200": 2}
    assert clients.token_for_source(sid) == token
    assert harness.token_requests(fake) == {"200": 2}


@pytest.mark.parametrize("how", ["superseded", "revoked"])
@pytest.mark.usefixtures("clean_db")
def test_a_superseded_or_revoked_token_is_refreshed_once_and_the_call_retried(
    fake: FakeZoomServer, how: str
) -> None:
    app = fake.fake.account(0).s2s_app
    sid = add_app_source(fake.fake.account(0), app)
    fake.fake.configure(s2s_single_token=True)
    client = clients.client_for_source(sid)
    assert client.get("/users/me")["account_id"] == app.account_id
    old = clients.token_for_source(sid)
    if how == "superseded":
        get_token(fake, app)  # another app instance takes a token: ours is now invalid
    else:
        fake.fake.revoke_tokens(app)
    assert client.get("/users/me")["account_id"] == app.account_id
    new = clients.token_for_source(sid)
    assert new != old
    expected = 3 if how == "superseded" else 2
    assert harness.token_requests(fake, app.client_id) == {"200": expected}
    # A worker that still holds the old token and reports its 401 late evicts nothing.
    assert clients.get_token_cache().invalidate(str(sid), old) is False
    assert clients.token_for_source(sid) == new
    # The account id the limiter keys by, from GET /users/me with the current token.
    assert clients.client_for_source(sid).get("/users/me").get("account_id") == app.account_id


def test_rotation_over_fifty_refreshes_by_several_processes_never_loses_the_refresh_token(
    fake: FakeZoomServer, pool: ProcessPoolExecutor, clean_db: Engine, redis_client: redis.Redis
) -> None:
    app = fake.fake.account(0).add_app("general")
    sid = add_app_source(fake.fake.account(0), app)
    counter = f"refreshes:{uuid.uuid4().hex}"
    futures = [pool.submit(harness.rotation_child, str(sid), counter, 50) for _ in range(4)]
    done = sum(f.result(timeout=120) for f in futures)
    assert done >= 50
    statuses = harness.token_requests(fake, app.client_id)
    assert set(statuses) == {"200"}
    assert statuses["200"] >= 51
    stored, version, status = _stored_refresh_token(clean_db, sid)
    assert stored == app.refresh_token
    assert version == 1 + statuses["200"]
    assert status != SourceStatus.REAUTHORIZE
    assert not redis_client.exists(pending_key(str(sid)))


# What the next refresher finds after a SIGKILL at each point: a working source, or (killed
# while the request may have been at Zoom) the "outcome unknown" state, which the queued
# connection test then settles: "alive" (Zoom never saw the request) or "revoked".
CRASH_OUTCOMES = {
    "before_zoom_call": "works",
    "after_inflight_mark": "unknown, then alive",
    "after_zoom_answer": "unknown, then revoked",
    "after_pending_write": "works",
    "after_commit": "works",
    "after_pending_delete": "works",
}


def test_crash_at_each_rotation_step_leaves_a_working_or_clearly_reported_source(
    fake: FakeZoomServer, clean_db: Engine, redis_client: redis.Redis
) -> None:
    account = fake.fake.account(0)
    cases: dict[str, tuple[Any, uuid.UUID]] = {}
    for point in CRASH_OUTCOMES:
        app = account.add_app("general")
        cases[point] = (app, add_app_source(account, app))
    children = {point: SPAWN.Process(target=harness.crash_child, args=(str(sid), point))
                for point, (_, sid) in cases.items()}
    for child in children.values():
        child.start()
    for point, child in children.items():
        child.join(60)
        assert child.exitcode == -9, point

    cache = clients.get_token_cache()
    for point, outcome in CRASH_OUTCOMES.items():
        app, sid = cases[point]
        redis_client.delete(lock_key(str(sid)))  # the dead holder's lease running out
        sent_before = harness.token_requests(fake, app.client_id)
        if outcome.startswith("unknown"):
            with pytest.raises(RotationOutcomeUnknown) as info:
                cache.get_token(str(sid))
            assert info.value.admin_message == rotation_unknown_message(test_queued=True)
            _, _, status = _stored_refresh_token(clean_db, sid)
            assert status == SourceStatus.REAUTHORIZE, point
            # The possibly spent token was not sent again; a connection test will find out.
            assert harness.token_requests(fake, app.client_id) == sent_before, point
            with clean_db.connect() as conn:
                test_id, test_status = conn.execute(
                    select(col(ConnectionTest.id), col(ConnectionTest.status))
                    .where(col(ConnectionTest.source_id) == sid)).one()
            assert test_status == enums.TestStatus.QUEUED, point
            clients.reset()
            done = run_connection_test(test_id, enqueue=False)
            cache = clients.get_token_cache()
            stored, _, status = _stored_refresh_token(clean_db, sid)
            assert not redis_client.exists(pending_key(str(sid))), point
            if outcome.endswith("revoked"):
                assert done.status == enums.TestStatus.FAILED, point
                assert status == SourceStatus.REAUTHORIZE
                assert "paste a new refresh token" in done.message
                continue
            assert done.status == enums.TestStatus.SUCCEEDED, point
            assert status == SourceStatus.ACTIVE, point
            assert stored == app.refresh_token, point
        token = cache.get_token(str(sid))
        assert token.access_token, point
        # And the chain goes on: a forced refresh after that one works too.
        assert cache.invalidate(str(sid), token)
        assert cache.get_token(str(sid)) != token
        stored, _, status = _stored_refresh_token(clean_db, sid)
        assert stored == app.refresh_token, point
        assert status != SourceStatus.REAUTHORIZE
        assert not redis_client.exists(pending_key(str(sid))), point
        assert "400" not in harness.token_requests(fake, app.client_id), point


def test_a_refused_refresh_token_puts_the_source_in_reauthorize_with_the_revoked_message(
    fake: FakeZoomServer, clean_db: Engine, redis_client: redis.Redis
) -> None:
    app = fake.fake.account(0).add_app("general")
    sid = add_app_source(fake.fake.account(0), app)
    fake.fake.rotate_refresh_token(app)  # rotated elsewhere: ours is dead
    with pytest.raises(ZoomAuthError) as info:
        clients.token_for_source(sid)
    assert info.value.reauthorize
    assert info.value.admin_message == REAUTHORIZE_MESSAGE
    with clean_db.connect() as conn:
        status, message = conn.execute(select(col(Source.status), col(Source.status_message))
                                       .where(col(Source.id) == sid)).one()
    assert status == SourceStatus.REAUTHORIZE
    assert message == REAUTHORIZE_MESSAGE
    assert harness.token_requests(fake, app.client_id) == {"400": 1}
    assert not redis_client.exists(pending_key(str(sid)))


def test_bad_client_secret_is_an_auth_error_with_the_oauth_code(
    fake: FakeZoomServer, clean_db: Engine
) -> None:
    app = fake.fake.account(0).s2s_app
    sid = add_app_source(fake.fake.account(0), app)
    wrong = {"client_id": app.client_id, "client_secret": "wrong", "account_id": app.account_id}
    with clean_db.begin() as conn:
        conn.execute(update(Source).where(col(Source.id) == sid)
                     .values(credentials_ciphertext=encrypt_json(wrong)))
    with pytest.raises(ZoomAuthError) as info:
        clients.token_for_source(sid)
    assert info.value.code == "invalid_client"
    assert not info.value.reauthorize
    assert "client secret" in info.value.admin_message
    assert "wrong" not in str(info.value) + repr(info.value)


@pytest.mark.usefixtures("clean_db")
def test_redis_down_raises_a_retryable_error_without_calling_zoom(
    fake: FakeZoomServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.kit import redis as kit_redis
    from worker.zoom.errors import TokenCacheUnavailable

    sid = add_app_source(fake.fake.account(0), fake.fake.account(0).s2s_app)
    monkeypatch.setenv("AI_REDIS_URL", "redis://127.0.0.1:1/0")
    from worker.settings import get_settings

    get_settings.cache_clear()
    kit_redis.reset_redis()
    clients.reset()
    try:
        with pytest.raises(TokenCacheUnavailable) as info:
            clients.token_for_source(sid)
        assert info.value.retryable
        assert harness.token_requests(fake) == {}
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        kit_redis.reset_redis()
        clients.reset()
