"""Sources: create per grant type, read without secrets, rotate, disable, delete."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import (
    TenantCtx,
    assert_no_secret,
    source_payload,
)


def test_a_created_source_shows_which_credentials_are_set_but_never_their_values(
    client: TestClient, tenant: TenantCtx
) -> None:
    response = client.post("/v1/sources", json=source_payload(), headers=tenant.headers)
    assert response.status_code == 201
    body = response.json()
    assert body["credentials"] == {
        "client_id": True, "client_secret": True, "account_id": True, "refresh_token": False,
    }
    assert body["credentials_version"] == 1
    assert body["credentials_updated_at"] is not None
    assert body["zoom_account_id"] == "acct-123"
    assert body["status"] == "new"
    assert response.headers["location"] == f"/v1/sources/{body['id']}"
    assert_no_secret(response.text)
    again = client.get(f"/v1/sources/{body['id']}", headers=tenant.headers)
    assert again.status_code == 200
    assert_no_secret(again.text)
    assert "client-abc" not in again.text
