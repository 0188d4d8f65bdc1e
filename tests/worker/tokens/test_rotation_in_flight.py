"""Refresh-token rotation when Zoom's answer is lost in flight: a proxy between the OAuth client
and fakezoom drops or holds the answer, and a worker is SIGKILLed while it waits. Real Redis,
real Postgres, fakezoom over HTTP, real processes for the kill."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from fakezoom.server import FakeZoomServer
from fakezoom.testing import running_fakezoom
from tests.env import settings_pointed_at
from tests.factories import add_app_source
from tests.worker.tokens import children
from tests.worker.tokens.lossy_proxy import LossyProxy
from tests.worker.zoom import harness
from worker import clients
from worker.connection_tests.service import auth_message, run_connection_test
from worker.kit.crypto import decrypt_json
from worker.models import ConnectionTest, Source, SourceStatus, enums, utcnow
from worker.queues import Queue
from worker.tokens.cache import TokenCache, lock_key
from worker.tokens.credentials import (
    AUTO_TESTS,
    IN_FLIGHT,
    REAUTHORIZE_MESSAGE,
    OAuthClient,
    RotationOutcomeUnknown,
    SourceTokenFetcher,
    pending_key,
    rotation_unknown_message,
)
from worker.zoom.errors import ZoomAuthError, ZoomUnavailable

pytestmark = pytest.mark.slow

SPAWN = multiprocessing.get_context("spawn")
REVOKED = "refresh token rejected by Zoom (revoked or superseded)"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeZoomServer]:
    with running_fakezoom(users=5, days=1) as srv, settings_pointed_at(srv):
        yield srv


@pytest.fixture
def fake(server: FakeZoomServer, redis_client: redis.Redis, clean_db: Engine  # noqa: ARG001 - requested for its side effect
         ) -> Iterator[FakeZoomServer]:
    server.fake.reset_stats()
    server.fake.clear_faults()
    clients.reset()
    with harness.catching_logs() as logs:
        yield server
    harness.assert_no_secret_logged(logs, harness.known_secrets(server))


@pytest.fixture
def proxy(fake: FakeZoomServer, request: pytest.FixtureRequest) -> Iterator[LossyProxy]:
    how, lose = getattr(request, "param", ("drop", -1))
    with LossyProxy(fake.host, fake.port, how=how, lose=lose) as p:
        yield p


def _active_source(fake: FakeZoomServer, app: Any) -> uuid.UUID:
    now = utcnow()
    return add_app_source(
        fake.fake.accounts[app.account_id], app, status=SourceStatus.ACTIVE,
        status_message="connected",
        next_aggregation_at=now + timedelta(hours=1), next_activity_at=now + timedelta(hours=1),
    )


def _through(proxy_url: str, redis_client: redis.Redis, engine: Engine,
             timeout: float = 1.0) -> tuple[TokenCache, httpx.Client]:
    """A token cache whose OAuth calls go through the proxy (no backoff pauses)."""
    http = httpx.Client()
    oauth = OAuthClient(http, proxy_url, timeout, sleep=lambda _s: None)
    fetcher = SourceTokenFetcher(engine, redis_client, oauth)
    return TokenCache(redis_client, fetcher, 300, lease=10, wait=10), http


def _source(engine: Engine, sid: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(Source).where(col(Source.id) == sid)).mappings().one()
    out = dict(row)
    out["refresh_token"] = decrypt_json(out["credentials_ciphertext"]).get("refresh_token")
    return out


def _tests(engine: Engine, sid: uuid.UUID) -> list[ConnectionTest]:
    with engine.connect() as conn:
        rows = conn.execute(select(ConnectionTest).where(col(ConnectionTest.source_id) == sid)
                            ).mappings().all()
    return [ConnectionTest(**dict(r)) for r in rows]


def _mark(redis_client: redis.Redis, sid: uuid.UUID) -> dict[str, Any] | None:
    raw = redis_client.get(pending_key(str(sid)))
    return None if raw is None else dict(json.loads(raw))


def _assert_outcome_unknown(engine: Engine, redis_client: redis.Redis, sid: uuid.UUID
                            ) -> ConnectionTest:
    """The source says the rotation's outcome is unknown, is unscheduled, and one connection
    test is queued, in Postgres and on the broker."""
    source = _source(engine, sid)
    assert source["status"] == SourceStatus.REAUTHORIZE
    assert source["status_message"] == rotation_unknown_message(test_queued=True)
    assert source["next_aggregation_at"] is None
    assert source["next_activity_at"] is None
    tests = [t for t in _tests(engine, sid) if t.status != enums.TestStatus.FAILED]
    assert [t.status for t in tests] == [enums.TestStatus.QUEUED]
    messages = redis_client.lrange(str(Queue.CONNECTION_TESTS), 0, -1)
    assert sum(str(tests[0].id) in m.decode() for m in messages) == 1
    mark = _mark(redis_client, sid)
    assert mark is not None
    assert mark["state"] == IN_FLIGHT
    assert mark["base_version"] == source["credentials_version"]
    return tests[0]


def _run_the_queued_test(test: ConnectionTest) -> ConnectionTest:
    clients.reset()
    return run_connection_test(test.id, enqueue=False)


# -- the wording ---------------------------------------------------------------------------

def test_the_unknown_outcome_message_says_what_happened_and_what_to_do() -> None:
    queued = rotation_unknown_message(test_queued=True)
    assert queued == (
        "Zoom's answer to a refresh of this source's token was lost (a timeout, a dropped "
        "connection or a stopped worker), so it is not known whether Zoom has already replaced "
        "the refresh token. Syncing is paused and a connection test has been queued to find "
        "out: if it passes, syncing resumes by itself; if it fails, re-authorise the app in the "
        "Zoom Marketplace and paste the new refresh token into this source's credentials."
    )
    not_queued = rotation_unknown_message(test_queued=False)
    assert "run one to find out" in not_queued
    assert "queued" not in not_queued
    revoked = auth_message(ZoomAuthError("x", "invalid_grant", 400, reauthorize=True))
    for text in (queued, not_queued):
        assert text not in (REAUTHORIZE_MESSAGE, revoked)
        assert "revoked" not in text
        assert "invalid_grant" not in text
        assert "no longer accepts" not in text


# -- OAuthClient alone (httpx MockTransport) -----------------------------------------------

def _counting_client(fail: Exception | int) -> tuple[OAuthClient, list[str]]:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.content.decode())
        if isinstance(fail, Exception):
            raise fail
        return httpx.Response(fail, text="<html>bad gateway</html>")

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return OAuthClient(http, "https://zoom.example/oauth/token", 5, sleep=lambda _s: None), sent


@pytest.mark.parametrize("fail", [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("gone"),
                                  httpx.WriteTimeout("stuck"), 502, 504])
def test_a_refresh_token_whose_answer_was_lost_is_sent_once(fail: Exception | int) -> None:
    from worker.tokens.credentials import Credentials

    client, sent = _counting_client(fail)
    creds = Credentials("cid", "secret", refresh_token="rt-1")
    with pytest.raises(RotationOutcomeUnknown) as info:
        client.refresh(creds, "rt-1")
    assert len(sent) == 1
    assert info.value.retryable
    # The same failures on an account-credentials grant rotate nothing: retried.
    client, sent = _counting_client(fail)
    with pytest.raises(ZoomUnavailable if isinstance(fail, Exception) else Exception) as other:
        client.account_credentials(Credentials("cid", "secret", account_id="acct"))
    assert len(sent) == 3
    assert not isinstance(other.value, RotationOutcomeUnknown)


def test_a_refresh_whose_connection_never_opened_is_retried() -> None:
    from worker.tokens.credentials import Credentials

    client, sent = _counting_client(httpx.ConnectError("refused"))
    with pytest.raises(ZoomUnavailable) as info:
        client.refresh(Credentials("cid", "secret"), "rt-1")
    assert len(sent) == 3
    assert not isinstance(info.value, RotationOutcomeUnknown)


# -- through the proxy, in one process -------------------------------------------------------

@pytest.mark.parametrize("proxy", [("drop", -1), ("hold", -1)], indirect=True,
                         ids=["dropped", "slower-than-the-timeout"])
def test_a_refresh_answer_lost_in_flight_is_not_resent_and_the_source_says_so(
    fake: FakeZoomServer, proxy: LossyProxy, clean_db: Engine, redis_client: redis.Redis
) -> None:
    app = fake.fake.account(0).add_app("general")
    sid = _active_source(fake, app)
    cache, http = _through(proxy.oauth_url, redis_client, clean_db)
    with http, pytest.raises(RotationOutcomeUnknown) as info:
        cache.get_token(str(sid))
    # Exactly one request reached Zoom, which rotated: our stored token is now dead.
    assert proxy.lost == 1
    assert harness.token_requests(fake, app.client_id) == {"200": 1}
    assert _source(clean_db, sid)["refresh_token"] != app.refresh_token
    assert info.value.admin_message == rotation_unknown_message(test_queued=True)
    test = _assert_outcome_unknown(clean_db, redis_client, sid)

    # The next refresher (Zoom reachable again) does not send the spent token either, and
    # queues no second test.
    with pytest.raises(RotationOutcomeUnknown):
        clients.get_token_cache().get_token(str(sid))
    assert harness.token_requests(fake, app.client_id) == {"200": 1}
    assert [t.id for t in _tests(clean_db, sid)] == [test.id]

    # The queued test finds out: Zoom refuses the old token, the source says so plainly.
    done = _run_the_queued_test(test)
    assert done.status == enums.TestStatus.FAILED
    assert done.message.startswith(REVOKED)
    source = _source(clean_db, sid)
    assert source["status"] == SourceStatus.REAUTHORIZE
    assert source["status_message"].startswith(REVOKED)
    assert harness.token_requests(fake, app.client_id) == {"200": 1, "400": 1}
    assert _mark(redis_client, sid) is None


@pytest.mark.parametrize("proxy", [("swallow", 1)], indirect=True)
def test_a_request_that_never_reached_zoom_is_found_alive_by_the_connection_test(
    fake: FakeZoomServer, proxy: LossyProxy, clean_db: Engine, redis_client: redis.Redis
) -> None:
    app = fake.fake.account(0).add_app("general")
    sid = _active_source(fake, app)
    cache, http = _through(proxy.oauth_url, redis_client, clean_db)
    with http, pytest.raises(RotationOutcomeUnknown):
        cache.get_token(str(sid))
    assert proxy.lost == 1
    assert harness.token_requests(fake, app.client_id) == {}
    test = _assert_outcome_unknown(clean_db, redis_client, sid)

    done = _run_the_queued_test(test)
    assert done.status == enums.TestStatus.SUCCEEDED
    source = _source(clean_db, sid)
    assert source["status"] == SourceStatus.ACTIVE
    assert source["next_aggregation_at"] is not None
    assert source["refresh_token"] == app.refresh_token
    assert harness.token_requests(fake, app.client_id) == {"200": 1}
    assert _mark(redis_client, sid) is None
    # And the chain goes on.
    token = clients.token_for_source(sid)
    assert clients.get_token_cache().invalidate(str(sid), token)
    assert clients.token_for_source(sid) != token
    assert _source(clean_db, sid)["refresh_token"] == app.refresh_token


@pytest.mark.parametrize("proxy", [("drop", 1)], indirect=True)
def test_an_account_credentials_grant_whose_answer_was_lost_is_simply_asked_again(
    fake: FakeZoomServer, proxy: LossyProxy, clean_db: Engine, redis_client: redis.Redis
) -> None:
    app = fake.fake.account(0).s2s_app
    sid = _active_source(fake, app)
    cache, http = _through(proxy.oauth_url, redis_client, clean_db)
    with http:
        assert cache.get_token(str(sid)).access_token
    assert proxy.lost == 1
    assert harness.token_requests(fake, app.client_id) == {"200": 2}
    assert _source(clean_db, sid)["status"] == SourceStatus.ACTIVE
    assert _tests(clean_db, sid) == []


def test_a_refresh_that_could_not_connect_leaves_the_source_as_it_was(
    fake: FakeZoomServer, clean_db: Engine, redis_client: redis.Redis
) -> None:
    app = fake.fake.account(0).add_app("general")
    sid = _active_source(fake, app)
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # closed when the block ends: connections are refused
    cache, http = _through(f"http://127.0.0.1:{port}/oauth/token", redis_client, clean_db)
    with http, pytest.raises(ZoomUnavailable) as info:
        cache.get_token(str(sid))
    assert not isinstance(info.value, RotationOutcomeUnknown)
    assert _source(clean_db, sid)["status"] == SourceStatus.ACTIVE
    assert _mark(redis_client, sid) is None
    assert _tests(clean_db, sid) == []
    assert clients.token_for_source(sid).access_token
    assert harness.token_requests(fake, app.client_id) == {"200": 1}


def _queued_message(redis_client: redis.Redis, test: ConnectionTest) -> dict[str, Any]:
    (raw,) = [m for m in redis_client.lrange(str(Queue.CONNECTION_TESTS), 0, -1)
              if str(test.id) in m.decode()]
    return dict(json.loads(raw))


@pytest.mark.parametrize("proxy", [("drop", -1)], indirect=True)
def test_a_connection_test_whose_own_refresh_answer_is_lost_queues_the_next_after_a_pause(
    fake: FakeZoomServer, proxy: LossyProxy, clean_db: Engine, redis_client: redis.Redis
) -> None:
    app = fake.fake.account(0).add_app("general")
    sid = _active_source(fake, app)
    with Session(clean_db, expire_on_commit=False) as session:
        test = ConnectionTest(tenant_id=_source(clean_db, sid)["tenant_id"], source_id=sid)
        session.add(test)
        session.commit()
    cache, http = _through(proxy.oauth_url, redis_client, clean_db)
    with http:
        done = run_connection_test(test.id, get_token=lambda s: cache.get_token(str(s)),
                                   enqueue=False)
        assert done.status == enums.TestStatus.FAILED
        assert rotation_unknown_message(test_queued=True) in done.message
        assert harness.token_requests(fake, app.client_id) == {"200": 1}
        # The test learnt nothing: the next one is queued (the first at once).
        first = _assert_outcome_unknown(clean_db, redis_client, sid)
        assert first.id != test.id
        assert _queued_message(redis_client, first)["headers"]["eta"] is None
        assert _mark(redis_client, sid)["tests"] == 1  # type: ignore[index]
        # Outside a connection test the token is not sent again, and no other test is queued.
        with pytest.raises(RotationOutcomeUnknown) as info:
            clients.get_token_cache().get_token(str(sid))
        assert info.value.admin_message == rotation_unknown_message(test_queued=True)
        assert harness.token_requests(fake, app.client_id) == {"200": 1}
        assert len(_tests(clean_db, sid)) == 2
        # That test is the probe: it sends the token once; its answer is lost too, so the
        # next test waits a minute.
        again = run_connection_test(first.id, get_token=lambda s: cache.get_token(str(s)),
                                    enqueue=False)
    assert again.status == enums.TestStatus.FAILED
    # (Zoom refused the spent token, but that answer was lost as well.)
    assert harness.token_requests(fake, app.client_id) == {"200": 1, "400": 1}
    second = _assert_outcome_unknown(clean_db, redis_client, sid)
    assert _queued_message(redis_client, second)["headers"]["eta"] is not None
    assert _mark(redis_client, sid)["tests"] == 2  # type: ignore[index]
    # Zoom reachable again: the next test finds out.
    assert _run_the_queued_test(second).message.startswith(REVOKED)
    assert harness.token_requests(fake, app.client_id) == {"200": 1, "400": 2}


def test_after_the_automatic_tests_the_source_asks_the_admin_to_run_one(
    fake: FakeZoomServer, clean_db: Engine, redis_client: redis.Redis
) -> None:
    app = fake.fake.account(0).add_app("general")
    sid = _active_source(fake, app)
    redis_client.set(pending_key(str(sid)), json.dumps(
        {"state": IN_FLIGHT, "base_version": 1, "tests": AUTO_TESTS}))
    with pytest.raises(RotationOutcomeUnknown) as info:
        clients.token_for_source(sid)
    assert info.value.admin_message == rotation_unknown_message(test_queued=False)
    source = _source(clean_db, sid)
    assert source["status"] == SourceStatus.REAUTHORIZE
    assert source["status_message"] == rotation_unknown_message(test_queued=False)
    assert _tests(clean_db, sid) == []
    assert harness.token_requests(fake) == {}


# -- a worker killed while it waits for the answer -------------------------------------------

@pytest.mark.parametrize("proxy", [("hold", -1)], indirect=True)
def test_a_worker_killed_while_waiting_for_the_answer_is_detected_by_the_next_refresher(
    fake: FakeZoomServer, proxy: LossyProxy, clean_db: Engine, redis_client: redis.Redis
) -> None:
    app = fake.fake.account(0).add_app("general")
    sid = _active_source(fake, app)
    child = SPAWN.Process(target=children.refresh_through, args=(str(sid), proxy.oauth_url))
    child.start()
    try:
        # Zoom has answered (and rotated); the child is still waiting for that answer.
        assert proxy.answered.wait(60)
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert harness.token_requests(fake, app.client_id) == {"200": 1}
    assert _source(clean_db, sid)["status"] == SourceStatus.ACTIVE  # nobody knows yet
    redis_client.delete(lock_key(str(sid)))  # the dead holder's lease running out

    with ProcessPoolExecutor(1, mp_context=SPAWN) as pool:
        outcome = pool.submit(children.refresh_outcome, str(sid)).result(timeout=120)
    assert outcome == ("RotationOutcomeUnknown", rotation_unknown_message(test_queued=True))
    assert harness.token_requests(fake, app.client_id) == {"200": 1}  # not sent again
    test = _assert_outcome_unknown(clean_db, redis_client, sid)

    done = _run_the_queued_test(test)
    assert done.status == enums.TestStatus.FAILED
    assert done.message.startswith(REVOKED)
    assert _source(clean_db, sid)["status"] == SourceStatus.REAUTHORIZE
    assert harness.token_requests(fake, app.client_id) == {"200": 1, "400": 1}
