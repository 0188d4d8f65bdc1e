"""Problem details: one shape for every error, no internals, no echoed secrets."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.ratelimit import RateLimit
from tests.api.helpers import TenantCtx, assert_no_secret, source_payload
from tests.api.helpers import TestClient as Client


def _is_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert "detail" in body
    return body


def test_an_unknown_route_is_a_404_problem(client: TestClient) -> None:
    _is_problem(client.get("/v1/nothing-here"), 404)


def test_a_wrong_method_is_a_405_problem(client: TestClient, tenant: TenantCtx) -> None:
    _is_problem(client.put("/v1/sources", headers=tenant.headers), 405)


def test_malformed_json_is_a_400_problem(client: TestClient, tenant: TenantCtx) -> None:
    response = client.post("/v1/sources", content=b'{"name": ',
                           headers={**tenant.headers, "Content-Type": "application/json"})
    assert _is_problem(response, 400)["type"].endswith("malformed-json")


def test_a_validation_error_lists_field_location_and_reason(
    client: TestClient, tenant: TenantCtx
) -> None:
    payload = source_payload(plan="platinum", rate_share=2)
    body = _is_problem(client.post("/v1/sources", json=payload, headers=tenant.headers), 422)
    by_field = {e["field"]: e for e in body["errors"]}
    assert set(by_field) >= {"plan", "rate_share"}
    assert by_field["plan"]["location"] == "body"
    assert by_field["plan"]["reason"]


def test_a_rejected_body_is_never_echoed(client: TestClient, tenant: TenantCtx) -> None:
    payload = source_payload()
    payload["unexpected"] = payload["credentials"]["client_secret"]
    payload["credentials"]["extra"] = payload["credentials"]["client_secret"]
    response = client.post("/v1/sources", json=payload, headers=tenant.headers)
    _is_problem(response, 422)
    assert_no_secret(response.text)


@pytest.mark.usefixtures("client")
def test_a_key_that_floods_the_api_gets_429_with_retry_after(
    tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    with Client(create_app(rate_limit=RateLimit(limit=3, window_seconds=60))) as limited:
        statuses = [limited.get("/v1/sources", headers=tenant.headers).status_code
                    for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        blocked = limited.get("/v1/sources", headers=tenant.headers)
        body = _is_problem(blocked, 429)
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        assert body["retry_after"] == int(blocked.headers["retry-after"])
        # Another key has its own window; health needs no key and is never limited.
        assert limited.get("/v1/sources", headers=other_tenant.headers).status_code == 200
        assert limited.get("/healthz").status_code == 200


@pytest.mark.usefixtures("client", "tenant")
def test_an_unexpected_error_is_a_500_problem_without_internals() -> None:
    from fastapi import APIRouter

    app = create_app()
    boom = APIRouter()

    @boom.get("/boom")
    def explode() -> None:
        raise RuntimeError("internal detail: password=hunter2")

    app.include_router(boom)
    with Client(app, raise_server_exceptions=False) as failing:
        response = failing.get("/boom")
    body = _is_problem(response, 500)
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert body["type"].endswith("internal")
