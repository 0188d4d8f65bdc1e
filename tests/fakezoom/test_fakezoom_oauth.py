"""OAuth token endpoint and bearer-token rules of the fake."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from fakezoom.server import FakeZoomServer
from fakezoom.testing import get_token


def _post(server: FakeZoomServer, auth: tuple[str, str] | None, **data: str) -> httpx.Response:
    return httpx.post(server.oauth_token_url, auth=auth, data=data)


def _users(server: FakeZoomServer, token: str) -> httpx.Response:
    return httpx.get(f"{server.api_url}/users", headers={"Authorization": f"Bearer {token}"})


def test_s2s_grant_returns_a_bearer_token_with_the_granted_scopes(
    fakezoom_server: FakeZoomServer,
) -> None:
    app = fakezoom_server.fake.account(0).s2s_app
    body = get_token(fakezoom_server, app)
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["scope"].split() == app.scopes
    assert body["api_url"] == fakezoom_server.base_url
    assert "refresh_token" not in body
    _header, payload, _ = body["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aid"] == app.account_id
    assert _users(fakezoom_server, body["access_token"]).status_code == 200


def test_parameters_are_also_accepted_in_the_query_string(fakezoom_server: FakeZoomServer
                                                          ) -> None:
    app = fakezoom_server.fake.account(0).s2s_app
    r = httpx.post(fakezoom_server.oauth_token_url, auth=(app.client_id, app.client_secret),
                   params={"grant_type": "account_credentials", "account_id": app.account_id})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("creds", "data", "error"),
    [
        ("wrong", {"grant_type": "account_credentials"}, "invalid_client"),
        (None, {"grant_type": "account_credentials"}, "invalid_client"),
        ("ok", {"grant_type": "password"}, "unsupported_grant_type"),
        ("ok", {"grant_type": "refresh_token", "refresh_token": "x"}, "unsupported_grant_type"),
        ("ok", {"grant_type": "account_credentials"}, "invalid_request"),
        ("ok", {"grant_type": "account_credentials", "account_id": "nope"}, "invalid_request"),
    ],
)
def test_oauth_errors_use_zoom_reason_and_error_body(
    fakezoom_server: FakeZoomServer, creds: str | None, data: dict[str, str], error: str
) -> None:
    app = fakezoom_server.fake.account(0).s2s_app
    auth = {"ok": (app.client_id, app.client_secret),
            "wrong": (app.client_id, "bad-secret"), None: None}[creds]
    r = _post(fakezoom_server, auth, **data)
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == error
    assert isinstance(body["reason"], str)
    assert body["reason"]


def test_refresh_tokens_rotate_and_the_previous_one_is_invalid_grant(
    fakezoom_server: FakeZoomServer,
) -> None:
    app = fakezoom_server.fake.account(0).general_app
    auth = (app.client_id, app.client_secret)
    first = app.refresh_token
    assert first
    r1 = _post(fakezoom_server, auth, grant_type="refresh_token", refresh_token=first)
    assert r1.status_code == 200, r1.text
    second = r1.json()["refresh_token"]
    assert second != first
    old = _post(fakezoom_server, auth, grant_type="refresh_token", refresh_token=first)
    assert old.status_code == 400
    assert old.json() == {"reason": "Invalid Token!", "error": "invalid_grant"}
    r2 = _post(fakezoom_server, auth, grant_type="refresh_token", refresh_token=second)
    assert r2.status_code == 200
    # The access token from the first refresh stays valid until it expires.
    assert _users(fakezoom_server, r1.json()["access_token"]).status_code == 200
    missing = _post(fakezoom_server, auth, grant_type="refresh_token")
    assert missing.json()["error"] == "invalid_request"


def test_access_tokens_expire_on_the_fake_clock(fakezoom_server: FakeZoomServer) -> None:
    token = get_token(fakezoom_server, fakezoom_server.fake.account(0).s2s_app)["access_token"]
    fakezoom_server.fake.advance(3599)
    assert _users(fakezoom_server, token).status_code == 200
    fakezoom_server.fake.advance(2)
    r = _users(fakezoom_server, token)
    assert r.status_code == 401
    assert r.json()["code"] == 124


def test_missing_or_garbage_bearer_is_code_124(fakezoom_server: FakeZoomServer) -> None:
    r = httpx.get(f"{fakezoom_server.api_url}/users")
    assert (r.status_code, r.json()) == (401, {"code": 124, "message": "Invalid access token."})
    assert _users(fakezoom_server, "abc.def.ghi").json()["code"] == 124


def test_several_s2s_tokens_stay_valid_by_default(fakezoom_server: FakeZoomServer) -> None:
    app = fakezoom_server.fake.account(0).s2s_app
    t1 = get_token(fakezoom_server, app)["access_token"]
    t2 = get_token(fakezoom_server, app)["access_token"]
    assert t1 != t2
    assert _users(fakezoom_server, t1).status_code == 200
    assert _users(fakezoom_server, t2).status_code == 200


def test_s2s_single_token_switch_makes_the_previous_token_124(
    fakezoom_server: FakeZoomServer,
) -> None:
    fakezoom_server.fake.configure(s2s_single_token=True)
    app = fakezoom_server.fake.account(0).s2s_app
    t1 = get_token(fakezoom_server, app)["access_token"]
    t2 = get_token(fakezoom_server, app)["access_token"]
    r = _users(fakezoom_server, t1)
    assert (r.status_code, r.json()["code"]) == (401, 124)
    assert _users(fakezoom_server, t2).status_code == 200


def test_revoked_tokens_answer_124_and_a_new_token_works(fakezoom_server: FakeZoomServer
                                                         ) -> None:
    app = fakezoom_server.fake.account(0).s2s_app
    token = get_token(fakezoom_server, app)["access_token"]
    assert fakezoom_server.fake.revoke_tokens(app) == 1
    assert _users(fakezoom_server, token).json()["code"] == 124
    fresh = get_token(fakezoom_server, app)["access_token"]
    assert _users(fakezoom_server, fresh).status_code == 200


def test_revoke_through_the_admin_endpoint_also_kills_the_refresh_token(
    fakezoom_server: FakeZoomServer,
) -> None:
    app = fakezoom_server.fake.account(0).general_app
    token = get_token(fakezoom_server, app)["access_token"]
    rt = app.refresh_token
    r = httpx.post(f"{fakezoom_server.base_url}/_fake/apps/{app.client_id}/revoke",
                   json={"refresh": True})
    assert r.json() == {"revoked": 1}
    assert _users(fakezoom_server, token).json()["code"] == 124
    again = _post(fakezoom_server, (app.client_id, app.client_secret),
                  grant_type="refresh_token", refresh_token=rt or "")
    assert again.json()["error"] == "invalid_grant"


def test_calls_without_the_endpoint_scope_are_refused(fakezoom_server: FakeZoomServer) -> None:
    fake = fakezoom_server.fake
    default = get_token(fakezoom_server, fake.account(0).s2s_app)["access_token"]
    roles = httpx.get(f"{fakezoom_server.api_url}/roles",
                      headers={"Authorization": f"Bearer {default}"})
    assert roles.status_code == 400
    assert roles.json()["code"] == 4700
    assert "role:read:admin" in roles.json()["message"]

    narrow = fake.account(0).add_app(scopes=["report:read:admin"])
    token = get_token(fakezoom_server, narrow)["access_token"]
    r = _users(fakezoom_server, token)
    assert r.status_code == 400
    assert r.json()["code"] == 4711
    assert r.json()["message"].startswith(
        "Invalid access token, does not contain scopes:[user:read:admin")


def test_granular_scopes_are_accepted(fakezoom_server: FakeZoomServer) -> None:
    app = fakezoom_server.fake.account(0).add_app(
        scopes=["user:read:list_users:admin", "role:read:list_roles:admin"])
    token = get_token(fakezoom_server, app)["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{fakezoom_server.api_url}/users", headers=headers).status_code == 200
    assert httpx.get(f"{fakezoom_server.api_url}/roles", headers=headers).status_code == 200
    groups = httpx.get(f"{fakezoom_server.api_url}/groups", headers=headers)
    assert groups.json()["code"] == 4711


def test_token_requests_are_counted_per_app(fakezoom_server: FakeZoomServer) -> None:
    app = fakezoom_server.fake.account(0).s2s_app
    get_token(fakezoom_server, app)
    _post(fakezoom_server, (app.client_id, "bad"), grant_type="account_credentials")
    stats = httpx.get(f"{fakezoom_server.base_url}/_fake/stats").json()
    assert stats["token_requests"][app.client_id]["statuses"] == {"200": 1}
    assert stats["token_requests"]["-"]["statuses"] == {"400": 1}
