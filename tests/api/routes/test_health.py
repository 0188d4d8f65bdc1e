"""Liveness and readiness need no key; readiness names the dependency that is down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from worker.settings import get_settings


def test_health_needs_no_key(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "broker": "ok"}


@pytest.fixture
def unreachable_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Port 1 refuses connections: a real failure, not a mock.
    monkeypatch.setenv("AI_BROKER_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.usefixtures("unreachable_broker")
def test_readiness_is_503_and_names_the_broker_when_it_is_down(
    client: TestClient
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["checks"] == {"postgres": "ok", "redis": "ok", "broker": "unreachable"}
    assert "broker" in body["detail"]
    assert "127.0.0.1:1" not in response.text
