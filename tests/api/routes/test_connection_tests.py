"""Connection tests: queued with ids only on their own queue, polled until done."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.api.helpers import TenantCtx, assert_no_secret, create_source
from tests.broker import broker_messages


def test_a_test_is_queued_at_once_with_ids_only_on_the_connection_tests_queue(
    client: TestClient, tenant: TenantCtx, redis_client: Any, clean_db: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = create_source(client, tenant)
    zoom_calls: list[object] = []

    def no_outbound_http(_self: object, request: object) -> object:
        zoom_calls.append(request)
        raise AssertionError("the API must never call Zoom")

    # The API answers at once because it only stores a row and a message: prove that no HTTP
    # leaves the process while it answers, rather than timing it.
    # (The TestClient has a transport of its own; only real network transports are stubbed.)
    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", no_outbound_http)
    response = client.post(f"/v1/sources/{source['id']}/connection-tests",
                           headers=tenant.headers)
    monkeypatch.undo()
    assert response.status_code == 202
    assert zoom_calls == []
    body = response.json()
    assert body["status"] == "queued"
    assert body["kind"] == "connection_test"
    assert body["links"]["self"] == f"/v1/connection-tests/{body['id']}"
    assert response.headers["location"] == body["links"]["self"]

    [message] = broker_messages(redis_client, "connection_tests")
    assert message["args"] == [body["id"]]
    assert message["kwargs"] == {}
    assert message["headers"]["task"] == "zoom.test_connection"
    assert message["headers"]["tenant_id"] == tenant.id
    assert message["headers"]["source_id"] == source["id"]
    assert_no_secret(message["raw"])
    assert "client-abc" not in message["raw"]

    with clean_db.connect() as conn:
        status = conn.execute(text("SELECT status FROM connection_test WHERE id = :id"),
                              {"id": body["id"]}).scalar()
    assert status == "queued"


def test_a_test_is_read_and_listed_newest_first(
    client: TestClient, tenant: TenantCtx, clean_db: Engine
) -> None:
    source = create_source(client, tenant)
    ids = [client.post(f"/v1/sources/{source['id']}/connection-tests",
                       headers=tenant.headers).json()["id"] for _ in range(3)]
    with clean_db.begin() as conn:
        conn.execute(text(
            "UPDATE connection_test SET status = 'failed', zoom_error_code = '124', "
            "missing_scopes = '[\"report:read:admin\"]', message = 'scope missing' "
            "WHERE id = :id"), {"id": ids[0]})
    one = client.get(f"/v1/connection-tests/{ids[0]}", headers=tenant.headers).json()
    assert one["status"] == "failed"
    assert one["missing_scopes"] == ["report:read:admin"]
    assert one["zoom_error_code"] == "124"
    first = client.get(f"/v1/sources/{source['id']}/connection-tests?limit=2",
                       headers=tenant.headers).json()
    second = client.get(
        f"/v1/sources/{source['id']}/connection-tests?limit=2&cursor={first['next_cursor']}",
        headers=tenant.headers,
    ).json()
    assert [t["id"] for t in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None


def test_a_disabled_source_cannot_be_tested(client: TestClient, tenant: TenantCtx) -> None:
    source = create_source(client, tenant)
    client.post(f"/v1/sources/{source['id']}/disable", headers=tenant.headers)
    response = client.post(f"/v1/sources/{source['id']}/connection-tests",
                           headers=tenant.headers)
    assert response.status_code == 409


def test_unknown_tests_and_sources_are_404(client: TestClient, tenant: TenantCtx) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    assert client.get(f"/v1/connection-tests/{missing}", headers=tenant.headers).status_code == 404
    assert client.post(f"/v1/sources/{missing}/connection-tests",
                       headers=tenant.headers).status_code == 404
    assert client.get("/v1/connection-tests/not-a-uuid", headers=tenant.headers).status_code == 422


@pytest.mark.usefixtures("clean_db")
def test_when_the_broker_refuses_the_test_fails_visibly_and_the_api_answers_503(
    client: TestClient, tenant: TenantCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The broker's refusal is simulated at the enqueue function: this tests our error path,
    # not the broker (every other test here uses the real one).
    from worker import dispatch

    def refuse(*_args: Any, **_kwargs: Any) -> str:
        raise ConnectionError("broker down")

    monkeypatch.setattr(dispatch, "enqueue_connection_test", refuse)
    source = create_source(client, tenant)
    response = client.post(f"/v1/sources/{source['id']}/connection-tests",
                           headers=tenant.headers)
    assert response.status_code == 503
    assert response.json()["checks"] == {"broker": "unreachable"}
    listed = client.get(f"/v1/sources/{source['id']}/connection-tests",
                        headers=tenant.headers).json()["items"]
    assert [t["status"] for t in listed] == ["failed"]
