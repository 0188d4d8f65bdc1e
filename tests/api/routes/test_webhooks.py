"""Zoom's webhook endpoint: signature, replay window, URL validation, limits, the inbox."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.routes.webhooks import MAX_WEBHOOK_BYTES
from tests.api.helpers import TenantCtx, create_source
from tests.broker import broker_messages
from tests.webhook_signing import event_body, sign_in_object, signed_headers
from worker.kit.crypto import decrypt_json

SECRET = "wh-secret-token-value-123"


def _source_with_secret(client: TestClient, tenant: TenantCtx, name: str = "zoom-main",
                        secret: str = SECRET) -> dict[str, Any]:
    source = create_source(client, tenant, name)
    patched = client.patch(f"/v1/sources/{source['id']}",
                           json={"credentials": {"webhook_secret_token": secret}},
                           headers=tenant.headers)
    assert patched.status_code == 200, patched.text
    body: dict[str, Any] = patched.json()
    return body


def _inbox(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT source_id, event, status, body FROM webhook_event")))


def _wait_for(probe: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def _post(client: TestClient, source_id: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(f"/v1/webhooks/zoom/{source_id}", content=body, headers=headers)


def test_the_secret_token_is_write_only_encrypted_and_leaves_the_oauth_state_alone(
    client: TestClient, tenant: TenantCtx, clean_db: Engine
) -> None:
    source = _source_with_secret(client, tenant)
    assert source["credentials"]["webhook_secret_token"] is True
    assert source["status"] == "new"
    assert source["credentials"]["client_secret"] is True
    assert source["links"]["webhook"] == f"/v1/webhooks/zoom/{source['id']}"
    assert source["last_webhook_at"] is None
    assert SECRET not in client.get(f"/v1/sources/{source['id']}", headers=tenant.headers).text
    with clean_db.connect() as conn:
        cipher = conn.execute(text("SELECT credentials_ciphertext FROM source")).scalar_one()
    assert SECRET not in cipher
    stored = decrypt_json(cipher)
    assert stored["webhook_secret_token"] == SECRET
    assert stored["client_id"] == "client-abc"
    # Rotating the OAuth secret later keeps the Secret Token.
    client.patch(f"/v1/sources/{source['id']}",
                 json={"credentials": {"client_secret": "another-client-secret"}},
                 headers=tenant.headers)
    with clean_db.connect() as conn:
        cipher = conn.execute(text("SELECT credentials_ciphertext FROM source")).scalar_one()
    assert decrypt_json(cipher)["webhook_secret_token"] == SECRET


def test_url_validation_is_answered_with_the_hmac_of_the_plain_token(
    client: TestClient, tenant: TenantCtx, clean_db: Engine
) -> None:
    source = _source_with_secret(client, tenant)
    body = json.dumps({"event": "endpoint.url_validation", "event_ts": 1,
                       "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}}).encode()
    response = _post(client, source["id"], body, signed_headers(SECRET, body))
    assert response.status_code == 200, response.text
    expected = hmac.new(SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert response.json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw",
                               "encryptedToken": expected}
    assert _inbox(clean_db) == []


def test_a_signed_event_is_stored_raw_and_its_processing_enqueued_by_id(
    client: TestClient, tenant: TenantCtx, clean_db: Engine, redis_client: Any
) -> None:
    source = _source_with_secret(client, tenant)
    body = event_body("user.signed_in", sign_in_object("ada@acme.example",
                                                       "2026-12-01T10:00:00Z"))
    response = _post(client, source["id"], body, signed_headers(SECRET, body))
    assert response.status_code == 200, response.text
    rows = _inbox(clean_db)
    assert [(str(r[0]), r[1], r[2]) for r in rows] == [(source["id"], "user.signed_in",
                                                        "pending")]
    assert rows[0][3].encode() == body
    # Sent by the API's sender thread, not by the request: wait for it.
    messages = _wait_for(lambda: broker_messages(redis_client, "webhooks"))
    assert len(messages) == 1
    assert messages[0]["headers"]["task"] == "zoom.webhook_events"
    ((event_id,),) = messages[0]["args"]
    with clean_db.connect() as conn:
        assert str(conn.execute(text("SELECT id FROM webhook_event")).scalar()) == event_id
    assert "ada@acme.example" not in messages[0]["raw"]
    shown = client.get(f"/v1/sources/{source['id']}", headers=tenant.headers).json()
    assert shown["last_webhook_at"] is not None
    # Zoom retrying the same body adds nothing and sends nothing more.
    again = _post(client, source["id"], body, signed_headers(SECRET, body))
    assert again.status_code == 200
    assert len(_inbox(clean_db)) == 1
    with clean_db.connect() as conn:  # marked sent once the message is out
        _wait_for(lambda: conn.execute(text("SELECT enqueued_at FROM webhook_event")).scalar())
    assert len(broker_messages(redis_client, "webhooks")) == 1


def test_forged_replayed_or_altered_requests_and_unknown_sources_get_one_bare_401(
    client: TestClient, tenant: TenantCtx, clean_db: Engine, redis_client: Any
) -> None:
    source = _source_with_secret(client, tenant)
    other = create_source(client, tenant, "no-secret")  # no Secret Token set
    body = event_body("user.signed_in", sign_in_object("ada@acme.example",
                                                       "2026-12-01T10:00:00Z"))
    good = signed_headers(SECRET, body)
    altered = body.replace(b"ada@", b"adb@")
    assert len(altered) == len(body)
    cases = {
        "forged": (source["id"], body, signed_headers("not-the-secret", body)),
        "replayed after 5 minutes": (source["id"], body,
                                     signed_headers(SECRET, body, int(time.time()) - 301)),
        "from the future": (source["id"], body,
                            signed_headers(SECRET, body, int(time.time()) + 400)),
        "body changed by one byte": (source["id"], altered, good),
        "no signature": (source["id"], body, {"content-type": "application/json"}),
        "unknown source": (str(uuid.uuid4()), body, good),
        "not a uuid": ("zoom-main", body, good),
        "source without a secret": (other["id"], body, signed_headers("", body)),
    }
    answers = {}
    for name, (sid, payload, headers) in cases.items():
        response = _post(client, sid, payload, headers)
        answers[name] = (response.status_code, response.content)
    assert answers == dict.fromkeys(cases, (401, b""))
    assert _inbox(clean_db) == []
    assert broker_messages(redis_client, "webhooks") == []
    # The same request, untouched, is accepted: the cases above failed on what they changed.
    assert _post(client, source["id"], body, good).status_code == 200


def test_oversized_bodies_get_413_and_signed_non_json_gets_400(
    client: TestClient, tenant: TenantCtx, clean_db: Engine
) -> None:
    source = _source_with_secret(client, tenant)
    big = b'{"event": "user.updated", "pad": "' + b"x" * MAX_WEBHOOK_BYTES + b'"}'
    assert _post(client, source["id"], big, signed_headers(SECRET, big)).status_code == 413
    for junk in (b"not json", b"[1, 2]", b'{"no_event": 1}'):
        response = _post(client, source["id"], junk, signed_headers(SECRET, junk))
        assert response.status_code == 400, junk
    # Unsigned junk is refused as unsigned: nothing says whether the body would have parsed.
    assert _post(client, source["id"], b"not json",
                 signed_headers("wrong", b"not json")).status_code == 401
    assert _inbox(clean_db) == []


@pytest.mark.usefixtures("clean_db")
def test_the_endpoint_needs_no_api_key_and_ignores_one(
    client: TestClient, tenant: TenantCtx
) -> None:
    source = _source_with_secret(client, tenant)
    body = event_body("user.signed_out", sign_in_object("ada@acme.example",
                                                        "2026-12-01T10:00:00Z"))
    headers = {**signed_headers(SECRET, body), "Authorization": "Bearer not-a-key"}
    assert _post(client, source["id"], body, headers).status_code == 200
