"""API test fixtures: the app on real Postgres and a real Redis broker, tenants with keys."""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from starlette.exceptions import StarletteDeprecationWarning

# Starlette 1.x prefers httpx2 for its TestClient and warns on httpx; the warning is about a
# test dependency (not our code), and filterwarnings=error would turn it into a failure.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from api.main import create_app


@dataclass
class TenantCtx:
    id: str
    key: str
    headers: dict[str, str]


@pytest.fixture
def client(clean_db: Engine, redis_client: Any) -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture
def admin_headers(admin_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_key}"}


def new_tenant(client: TestClient, admin_headers: dict[str, str], name: str) -> TenantCtx:
    tenant = client.post("/v1/tenants", json={"name": name}, headers=admin_headers)
    assert tenant.status_code == 201, tenant.text
    tenant_id = tenant.json()["id"]
    key = client.post(f"/v1/tenants/{tenant_id}/keys", json={"name": "tests"},
                      headers=admin_headers)
    assert key.status_code == 201, key.text
    plain = key.json()["key"]
    return TenantCtx(id=tenant_id, key=plain, headers={"Authorization": f"Bearer {plain}"})


@pytest.fixture
def tenant(client: TestClient, admin_headers: dict[str, str]) -> TenantCtx:
    return new_tenant(client, admin_headers, "acme")


@pytest.fixture
def other_tenant(client: TestClient, admin_headers: dict[str, str]) -> TenantCtx:
    return new_tenant(client, admin_headers, "globex")


S2S_CREDENTIALS = {
    "account_id": "acct-123",
    "client_id": "client-abc",
    "client_secret": "s3cr3t-client-secret-value",
}
REFRESH_CREDENTIALS = {
    "client_id": "client-rt",
    "client_secret": "s3cr3t-rt-client-secret",
    "refresh_token": "s3cr3t-refresh-token-value",
}
SECRETS = (
    S2S_CREDENTIALS["client_secret"],
    REFRESH_CREDENTIALS["client_secret"],
    REFRESH_CREDENTIALS["refresh_token"],
)


def source_payload(name: str = "zoom-main", **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": name,
        "description": "Main Zoom account",
        "owner": "it@acme.example",
        "grant_type": "account_credentials",
        "credentials": dict(S2S_CREDENTIALS),
    }
    payload.update(overrides)
    return payload


def create_source(client: TestClient, ctx: TenantCtx, name: str = "zoom-main",
                  **overrides: Any) -> dict[str, Any]:
    response = client.post("/v1/sources", json=source_payload(name, **overrides),
                           headers=ctx.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def broker_messages(redis_client: Any, queue: str) -> list[dict[str, Any]]:
    """Messages waiting in a queue of kombu's Redis transport (a list of JSON envelopes whose
    body is base64 JSON ``[args, kwargs, embed]``), oldest first."""
    out = []
    for raw in reversed(redis_client.lrange(queue, 0, -1)):
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        out.append({"raw": raw.decode(), "headers": envelope["headers"], "args": body[0],
                    "kwargs": body[1]})
    return out


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@dataclass
class World:
    """Two tenants with one seeded source each, shared by a module's read-only tests."""

    client: TestClient
    a: TenantCtx
    b: TenantCtx
    source_a: dict[str, Any]
    source_b: dict[str, Any]
    seed_a: Any
    seed_b: Any


@pytest.fixture(scope="module")
def world(engine: Engine, redis_url: str, admin_key: str) -> Iterator[World]:
    """Seeded once per module (truncating per test would dominate the suite's run time);
    tests using it must not write."""
    import redis

    from tests.api.seed import seed_directory_and_activity
    from tests.conftest import truncate_all

    truncate_all(engine)
    flush = redis.Redis.from_url(redis_url)
    flush.flushdb()
    admin = {"Authorization": f"Bearer {admin_key}"}
    with TestClient(create_app()) as test_client:
        a = new_tenant(test_client, admin, "acme")
        b = new_tenant(test_client, admin, "globex")
        source_a = create_source(test_client, a, "zoom-a")
        source_b = create_source(test_client, b, "zoom-b")
        yield World(
            client=test_client, a=a, b=b, source_a=source_a, source_b=source_b,
            seed_a=seed_directory_and_activity(a.id, source_a["id"]),
            seed_b=seed_directory_and_activity(b.id, source_b["id"]),
        )
    truncate_all(engine)
    flush.flushdb()
    flush.close()
