"""What the API tests share: tenants with keys made through the API, source payloads, the
credentials' secrets (to check none leaks) and the seeded world's shape.

The fixtures that use these (`client`, `tenant`, `world`...) are in `tests/fixtures/api.py`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import StarletteDeprecationWarning

# Starlette 1.x prefers httpx2 for its TestClient and warns on httpx; the warning is about a
# test dependency (not our code), and filterwarnings=error would turn it into a failure.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

@dataclass
class TenantCtx:
    id: str
    key: str
    headers: dict[str, str]


def new_tenant(client: TestClient, admin_headers: dict[str, str], name: str) -> TenantCtx:
    tenant = client.post("/v1/tenants", json={"name": name}, headers=admin_headers)
    assert tenant.status_code == 201, tenant.text
    tenant_id = tenant.json()["id"]
    key = client.post(f"/v1/tenants/{tenant_id}/keys", json={"name": "tests"},
                      headers=admin_headers)
    assert key.status_code == 201, key.text
    plain = key.json()["key"]
    return TenantCtx(id=tenant_id, key=plain, headers={"Authorization": f"Bearer {plain}"})


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
