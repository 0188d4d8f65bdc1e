"""Tenant API keys: shown once, stored as a SHA-256, listed by prefix, revocable."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.api.helpers import TenantCtx


def test_a_key_is_shown_once_and_stored_only_as_its_hash(
    client: TestClient, admin_headers: dict[str, str], tenant: TenantCtx, clean_db: Engine
) -> None:
    created = client.post(f"/v1/tenants/{tenant.id}/keys", json={"name": "export"},
                          headers=admin_headers)
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("ai_")
    assert len(key) > 40
    assert created.json()["prefix"] == key[:10]

    listed = client.get(f"/v1/tenants/{tenant.id}/keys", headers=admin_headers)
    assert listed.status_code == 200
    assert key not in listed.text
    assert {k["name"] for k in listed.json()} == {"tests", "export"}
    assert all("key" not in k for k in listed.json())

    with clean_db.connect() as conn:
        rows = conn.execute(text("SELECT key_hash, prefix FROM api_key")).all()
    assert (hashlib.sha256(key.encode()).hexdigest(), key[:10]) in rows
    assert all(key not in " ".join(map(str, row)) for row in rows)


def test_both_header_forms_authenticate(client: TestClient, tenant: TenantCtx) -> None:
    assert client.get("/v1/sources", headers={"X-API-Key": tenant.key}).status_code == 200
    assert client.get("/v1/sources", headers=tenant.headers).status_code == 200


def test_a_revoked_key_stops_working_at_once_and_revoking_again_is_harmless(
    client: TestClient, admin_headers: dict[str, str], tenant: TenantCtx
) -> None:
    key_id = client.get(f"/v1/tenants/{tenant.id}/keys", headers=admin_headers).json()[0]["id"]
    assert client.delete(f"/v1/tenants/{tenant.id}/keys/{key_id}",
                         headers=admin_headers).status_code == 204
    denied = client.get("/v1/sources", headers=tenant.headers)
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"].startswith("Bearer")
    assert client.delete(f"/v1/tenants/{tenant.id}/keys/{key_id}",
                         headers=admin_headers).status_code == 204
    listed = client.get(f"/v1/tenants/{tenant.id}/keys", headers=admin_headers).json()
    assert listed[0]["revoked_at"] is not None


def test_a_key_cannot_be_revoked_through_another_tenant(
    client: TestClient, admin_headers: dict[str, str], tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    key_id = client.get(f"/v1/tenants/{tenant.id}/keys", headers=admin_headers).json()[0]["id"]
    response = client.delete(f"/v1/tenants/{other_tenant.id}/keys/{key_id}",
                             headers=admin_headers)
    assert response.status_code == 404
    assert client.get("/v1/sources", headers=tenant.headers).status_code == 200


def test_missing_and_unknown_keys_get_the_same_401(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer ai_nope"}, {"X-API-Key": "ai_nope"},
                    {"Authorization": "Basic Zm9vOmJhcg=="}):
        response = client.get("/v1/sources", headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"] == "a valid API key is required"


@pytest.mark.usefixtures("clean_db")
def test_an_admin_key_row_counts_as_the_admin_key(
    client: TestClient
) -> None:
    from worker.db import session_scope
    from worker.kit.apikeys import display_prefix, generate_key, hash_key
    from worker.models import ApiKey

    plain = generate_key()
    with session_scope() as db:
        db.add(ApiKey(is_admin=True, name="ops", prefix=display_prefix(plain),
                      key_hash=hash_key(plain)))
    response = client.post("/v1/tenants", json={"name": "via-row"},
                           headers={"X-API-Key": plain})
    assert response.status_code == 201
    # An admin key has no tenant: tenant endpoints say so instead of guessing one.
    assert client.get("/v1/sources", headers={"X-API-Key": plain}).status_code == 403
