"""Sources: create per grant type, read without secrets, rotate, disable, delete."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.api.helpers import (
    REFRESH_CREDENTIALS,
    S2S_CREDENTIALS,
    TenantCtx,
    assert_no_secret,
    create_source,
    source_payload,
)
from worker.kit.crypto import decrypt_json
from worker.tokens.cache import error_key, lock_key, token_key
from worker.tokens.credentials import pending_key


def _stored(engine: Engine, source_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT credentials_ciphertext, credentials_version FROM source WHERE id = :id"),
            {"id": source_id},
        ).one()
    return {"credentials": decrypt_json(row[0]), "version": row[1], "ciphertext": row[0]}


def test_a_created_source_shows_which_credentials_are_set_but_never_their_values(
    client: TestClient, tenant: TenantCtx, clean_db: Engine
) -> None:
    response = client.post("/v1/sources", json=source_payload(), headers=tenant.headers)
    assert response.status_code == 201
    body = response.json()
    assert body["credentials"] == {
        "client_id": True, "client_secret": True, "account_id": True, "refresh_token": False,
        "webhook_secret_token": False,
    }
    assert body["credentials_version"] == 1
    assert body["credentials_updated_at"] is not None
    assert body["zoom_account_id"] == "acct-123"
    assert body["status"] == "new"
    # Never tested, so not scheduled yet (the worker schedules only active sources).
    assert body["next_aggregation_at"] is None
    assert body["next_activity_at"] is None
    assert response.headers["location"] == f"/v1/sources/{body['id']}"
    assert_no_secret(response.text)
    again = client.get(f"/v1/sources/{body['id']}", headers=tenant.headers)
    assert again.status_code == 200
    assert_no_secret(again.text)
    assert "client-abc" not in again.text
    stored = _stored(clean_db, body["id"])
    assert stored["credentials"] == S2S_CREDENTIALS
    assert S2S_CREDENTIALS["client_secret"] not in stored["ciphertext"]


def test_a_refresh_token_source_needs_client_id_secret_and_refresh_token(
    client: TestClient, tenant: TenantCtx
) -> None:
    body = create_source(client, tenant, grant_type="refresh_token",
                         credentials=dict(REFRESH_CREDENTIALS))
    assert body["credentials"]["refresh_token"] is True
    assert body["zoom_account_id"] is None
    missing = client.post(
        "/v1/sources",
        json=source_payload("rt2", grant_type="refresh_token",
                            credentials={"client_id": "x", "client_secret": "y"}),
        headers=tenant.headers,
    )
    assert missing.status_code == 422
    reasons = " ".join(e["reason"] for e in missing.json()["errors"])
    assert "refresh_token" in reasons


@pytest.mark.parametrize(
    ("credentials", "missing"),
    [
        ({"client_id": "a", "client_secret": "b"}, "account_id"),
        ({"account_id": "a", "client_secret": "b"}, "client_id"),
        ({"account_id": "a", "client_id": "b"}, "client_secret"),
    ],
)
def test_account_credentials_need_account_id_client_id_and_secret(
    client: TestClient, tenant: TenantCtx, credentials: dict[str, str], missing: str
) -> None:
    response = client.post("/v1/sources", json=source_payload(credentials=credentials),
                           headers=tenant.headers)
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"][0]["field"] == "credentials"
    assert missing in problem["errors"][0]["reason"]


def test_validation_errors_name_the_field_and_never_echo_a_secret(
    client: TestClient, tenant: TenantCtx
) -> None:
    payload = source_payload(aggregation_cron="every day", timezone="Mars/Olympus")
    payload["credentials"]["client_secret"] = S2S_CREDENTIALS["client_secret"] + "\x00"
    response = client.post("/v1/sources", json=payload, headers=tenant.headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"aggregation_cron", "timezone", "credentials.client_secret"} <= fields
    assert_no_secret(response.text)


@pytest.mark.parametrize("cron", ["61 * * * *", "0 0 31 2 *", "* * * * * *", "@reboot"])
def test_schedules_must_be_five_field_cron_expressions_that_fire(
    client: TestClient, tenant: TenantCtx, cron: str
) -> None:
    response = client.post("/v1/sources", json=source_payload(activity_cron=cron),
                           headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "activity_cron"


def _activate(engine: Engine, source_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE source SET status = 'active' WHERE id = :id"), {"id": source_id})


def test_a_changed_schedule_of_an_active_source_sets_its_next_run_in_utc(
    client: TestClient, tenant: TenantCtx, clean_db: Engine
) -> None:
    source = create_source(client, tenant)
    _activate(clean_db, source["id"])
    body = client.patch(f"/v1/sources/{source['id']}",
                        json={"aggregation_cron": "30 2 * * *", "timezone": "Europe/Paris"},
                        headers=tenant.headers).json()
    assert body["aggregation_cron"] == "30 2 * * *"
    # 02:30 in Paris is 00:30 or 01:30 UTC depending on daylight saving time.
    assert body["next_aggregation_at"].endswith(("T00:30:00Z", "T01:30:00Z"))
    assert body["next_activity_at"] is not None


def test_a_duplicate_name_in_the_same_tenant_conflicts_but_not_across_tenants(
    client: TestClient, tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    create_source(client, tenant, "shared-name")
    dup = client.post("/v1/sources", json=source_payload("shared-name"), headers=tenant.headers)
    assert dup.status_code == 409
    assert "shared-name" in dup.json()["detail"]
    create_source(client, other_tenant, "shared-name")


def test_sources_are_listed_with_a_cursor(client: TestClient, tenant: TenantCtx) -> None:
    ids = {create_source(client, tenant, f"s{i}")["id"] for i in range(3)}
    first = client.get("/v1/sources?limit=2", headers=tenant.headers).json()
    second = client.get(f"/v1/sources?limit=2&cursor={first['next_cursor']}",
                        headers=tenant.headers).json()
    assert {s["id"] for s in first["items"] + second["items"]} == ids
    assert second["next_cursor"] is None
    bad = client.get("/v1/sources?cursor=not-a-cursor", headers=tenant.headers)
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "cursor"


def test_updating_plain_fields_leaves_credentials_alone(
    client: TestClient, tenant: TenantCtx, clean_db: Engine
) -> None:
    source = create_source(client, tenant)
    _activate(clean_db, source["id"])
    source = client.get(f"/v1/sources/{source['id']}", headers=tenant.headers).json()
    response = client.patch(
        f"/v1/sources/{source['id']}",
        json={"description": "new", "plan": "business", "rate_share": 0.5,
              "correlation_config": {"email": True, "employee_unique_id": False},
              "activity_cron": "0 4 * * 1-5"},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["description"], body["plan"], body["rate_share"]) == ("new", "business", 0.5)
    assert body["correlation_config"] == {"email": True, "employee_unique_id": False}
    assert body["credentials_version"] == 1
    assert body["next_activity_at"] is not None
    reset = client.patch(f"/v1/sources/{source['id']}", json={"rate_share": None},
                         headers=tenant.headers)
    assert reset.json()["rate_share"] is None
    null_name = client.patch(f"/v1/sources/{source['id']}", json={"name": None},
                             headers=tenant.headers)
    assert null_name.status_code == 422
    assert _stored(clean_db, source["id"])["version"] == 1


def test_rotating_credentials_bumps_the_version_and_drops_the_cached_token(
    client: TestClient, tenant: TenantCtx, clean_db: Engine, redis_client: Any
) -> None:
    source = create_source(client, tenant)
    sid = source["id"]
    for key in (token_key(sid), error_key(sid), pending_key(sid), lock_key(sid)):
        redis_client.set(key, "x")
    response = client.patch(f"/v1/sources/{sid}",
                            json={"credentials": {"client_secret": "rotated-secret-1"}},
                            headers=tenant.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["credentials_version"] == 2
    assert body["credentials_updated_at"] > source["credentials_updated_at"]
    assert "rotated-secret-1" not in response.text
    stored = _stored(clean_db, sid)
    assert stored["credentials"] == {**S2S_CREDENTIALS, "client_secret": "rotated-secret-1"}
    assert redis_client.exists(token_key(sid), error_key(sid), pending_key(sid)) == 0
    # The refresh lock belongs to whoever holds it; its lease frees it.
    assert redis_client.exists(lock_key(sid)) == 1


def test_sending_the_same_credentials_again_is_not_a_rotation(
    client: TestClient, tenant: TenantCtx
) -> None:
    source = create_source(client, tenant)
    response = client.patch(f"/v1/sources/{source['id']}",
                            json={"credentials": dict(S2S_CREDENTIALS)}, headers=tenant.headers)
    assert response.json()["credentials_version"] == 1


def test_switching_grant_type_needs_the_new_types_credentials_and_drops_the_old(
    client: TestClient, tenant: TenantCtx, clean_db: Engine
) -> None:
    source = create_source(client, tenant)
    refused = client.patch(f"/v1/sources/{source['id']}", json={"grant_type": "refresh_token"},
                           headers=tenant.headers)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "credentials"
    switched = client.patch(
        f"/v1/sources/{source['id']}",
        json={"grant_type": "refresh_token",
              "credentials": {"refresh_token": REFRESH_CREDENTIALS["refresh_token"]}},
        headers=tenant.headers,
    )
    assert switched.status_code == 200
    assert switched.json()["credentials"] == {
        "client_id": True, "client_secret": True, "account_id": False, "refresh_token": True,
        "webhook_secret_token": False,
    }
    assert switched.json()["zoom_account_id"] is None
    assert "account_id" not in _stored(clean_db, source["id"])["credentials"]


def test_rotating_credentials_of_a_failing_source_asks_for_a_new_test(
    client: TestClient, tenant: TenantCtx, clean_db: Engine
) -> None:
    source = create_source(client, tenant)
    with clean_db.begin() as conn:
        conn.execute(text("UPDATE source SET status = 'reauthorize' WHERE id = :id"),
                     {"id": source["id"]})
    body = client.patch(f"/v1/sources/{source['id']}",
                        json={"credentials": {"client_secret": "fixed"}},
                        headers=tenant.headers).json()
    assert body["status"] == "new"
    assert "connection test" in body["status_message"]


def test_a_governance_source_must_be_another_source_of_the_tenant(
    client: TestClient, tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    governance = create_source(client, tenant, "governance")
    theirs = create_source(client, other_tenant, "theirs")
    activity = create_source(client, tenant, "activity-only", aggregation_enabled=False,
                             governance_source_id=governance["id"])
    assert activity["governance_source_id"] == governance["id"]
    for target in (theirs["id"], activity["id"], str(uuid.uuid4())):
        response = client.patch(f"/v1/sources/{activity['id']}",
                                json={"governance_source_id": target}, headers=tenant.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "governance_source_id"


def test_renaming_onto_an_existing_name_conflicts(client: TestClient, tenant: TenantCtx) -> None:
    create_source(client, tenant, "a")
    b = create_source(client, tenant, "b")
    response = client.patch(f"/v1/sources/{b['id']}", json={"name": "a"}, headers=tenant.headers)
    assert response.status_code == 409


def test_a_disabled_source_loses_its_schedule_until_enabled_and_tested_again(
    client: TestClient, tenant: TenantCtx, clean_db: Engine
) -> None:
    source = create_source(client, tenant)
    _activate(clean_db, source["id"])
    client.patch(f"/v1/sources/{source['id']}", json={"activity_cron": "0 5 * * *"},
                 headers=tenant.headers)
    disabled = client.post(f"/v1/sources/{source['id']}/disable", headers=tenant.headers).json()
    assert disabled["status"] == "disabled"
    assert disabled["next_aggregation_at"] is None
    assert disabled["next_activity_at"] is None
    enabled = client.post(f"/v1/sources/{source['id']}/enable", headers=tenant.headers).json()
    assert enabled["status"] == "new"
    assert "connection test" in enabled["status_message"]


def test_deleting_a_source_needs_its_name_and_removes_its_data(
    client: TestClient, tenant: TenantCtx, clean_db: Engine, redis_client: Any
) -> None:
    from tests.api.seed import seed_directory_and_activity

    source = create_source(client, tenant, "to-delete")
    seed_directory_and_activity(tenant.id, source["id"])
    redis_client.set(token_key(source["id"]), "x")
    refused = client.delete(f"/v1/sources/{source['id']}?confirm=wrong", headers=tenant.headers)
    assert refused.status_code == 400
    assert refused.json()["errors"][0] == {
        "field": "confirm", "location": "query", "reason": refused.json()["detail"],
    }
    assert client.delete(f"/v1/sources/{source['id']}",
                         headers=tenant.headers).status_code == 400
    deleted = client.delete(f"/v1/sources/{source['id']}?confirm=to-delete",
                            headers=tenant.headers)
    assert deleted.status_code == 204
    assert client.get(f"/v1/sources/{source['id']}", headers=tenant.headers).status_code == 404
    with clean_db.connect() as conn:
        for table in ("zoom_user", "activity_event", "meeting", "sync_run",
                      "meeting_participant", "user_daily_summary", "account_correlation"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0, table
        # Identities belong to the tenant, not to the source.
        assert conn.execute(text("SELECT count(*) FROM identity")).scalar() == 1
    assert redis_client.exists(token_key(source["id"])) == 0


def test_no_secret_reaches_the_logs(
    client: TestClient, tenant: TenantCtx, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    source = create_source(client, tenant)
    client.patch(f"/v1/sources/{source['id']}",
                 json={"credentials": {"client_secret": S2S_CREDENTIALS["client_secret"] + "2"}},
                 headers=tenant.headers)
    bad = source_payload("bad", timezone="Nowhere/Land")
    client.post("/v1/sources", json=bad, headers=tenant.headers)
    client.post(f"/v1/sources/{source['id']}/connection-tests", headers=tenant.headers)
    assert_no_secret(caplog.text)
    assert tenant.key not in caplog.text
