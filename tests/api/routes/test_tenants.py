"""Tenants: the admin key creates, lists and reads them; nobody else can."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.helpers import TenantCtx


def test_the_admin_key_creates_a_tenant_and_a_duplicate_name_conflicts(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    created = client.post("/v1/tenants", json={"name": "initech"}, headers=admin_headers)
    assert created.status_code == 201
    assert created.headers["location"] == f"/v1/tenants/{created.json()['id']}"
    again = client.post("/v1/tenants", json={"name": "initech"}, headers=admin_headers)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["status"] == 409


def test_tenants_are_listed_page_by_page_and_read_by_id(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    ids = {client.post("/v1/tenants", json={"name": f"t{i}"}, headers=admin_headers).json()["id"]
           for i in range(3)}
    first = client.get("/v1/tenants?limit=2", headers=admin_headers).json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    second = client.get(f"/v1/tenants?limit=2&cursor={first['next_cursor']}",
                        headers=admin_headers).json()
    assert second["next_cursor"] is None
    assert {t["id"] for t in first["items"] + second["items"]} == ids
    one = next(iter(ids))
    assert client.get(f"/v1/tenants/{one}", headers=admin_headers).json()["id"] == one


def test_a_tenant_key_cannot_use_admin_endpoints(client: TestClient, tenant: TenantCtx) -> None:
    assert client.post("/v1/tenants", json={"name": "x"}, headers=tenant.headers).status_code == 403
    assert client.get("/v1/tenants", headers=tenant.headers).status_code == 403
    assert client.get(f"/v1/tenants/{tenant.id}/keys", headers=tenant.headers).status_code == 403


def test_an_unknown_tenant_is_404(client: TestClient, admin_headers: dict[str, str]) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    assert client.get(f"/v1/tenants/{missing}", headers=admin_headers).status_code == 404
    assert client.post(f"/v1/tenants/{missing}/keys", json={},
                       headers=admin_headers).status_code == 404
