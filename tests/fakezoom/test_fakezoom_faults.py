"""Each fault switch does what it says, from Python and through the admin endpoints."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import httpx
import pytest

from fakezoom.server import FakeZoomServer
from fakezoom.testing import api_client


def _api(server: FakeZoomServer) -> httpx.Client:
    return api_client(server, server.fake.account(0).s2s_app)


def _admin(server: FakeZoomServer, **faults: object) -> None:
    r = httpx.post(f"{server.base_url}/_fake/faults", json=faults)
    r.raise_for_status()


def test_error_next_answers_5xx_then_recovers(fakezoom_server: FakeZoomServer) -> None:
    api = _api(fakezoom_server)
    _admin(fakezoom_server, error_next=2, error_status=503)
    assert [api.get("/users").status_code for _ in range(3)] == [503, 503, 200]
    assert fakezoom_server.fake.stats()["faults"]["5xx"] == 2


def test_error_rate_is_a_share_of_requests(fakezoom_server: FakeZoomServer) -> None:
    api = _api(fakezoom_server)
    fakezoom_server.fake.configure(rate_limits_enabled=False)
    fakezoom_server.fake.set_faults(error_rate=0.5)
    codes = [api.get("/users/me").status_code for _ in range(60)]
    assert 10 < codes.count(500) < 50
    assert set(codes) == {200, 500}
    fakezoom_server.fake.set_faults(error_rate=1.0)
    assert api.get("/users/me").status_code == 500


def test_latency_delays_responses(fakezoom_server: FakeZoomServer) -> None:
    api = _api(fakezoom_server)
    _admin(fakezoom_server, latency_ms=300)
    start = time.monotonic()
    assert api.get("/users/me").status_code == 200
    assert time.monotonic() - start >= 0.3


def test_malformed_json_hits_the_next_pages_of_one_endpoint(fakezoom_server: FakeZoomServer
                                                            ) -> None:
    api = _api(fakezoom_server)
    _admin(fakezoom_server, malformed_json_next=2, malformed_json_endpoint="/users")
    assert api.get("/groups").json()["groups"]  # other endpoints untouched
    for _ in range(2):
        r = api.get("/users")
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.text)
    assert api.get("/users").json()["users"]


def test_dropped_connection_sends_part_of_the_body_then_closes(
    fakezoom_server: FakeZoomServer,
) -> None:
    api = _api(fakezoom_server)
    fakezoom_server.fake.set_faults(drop_connection_next=1)
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/users")
    assert api.get("/users").status_code == 200


def test_html_403_for_one_meeting_only(fakezoom_server: FakeZoomServer) -> None:
    acc = fakezoom_server.fake.account(0)
    first, second = acc.meetings(acc.data.first_day, fakezoom_server.fake.anchor)[:2]
    _admin(fakezoom_server, html_403_meeting_uuid=first["uuid"])
    api = _api(fakezoom_server)
    r = api.get(f"/report/meetings/{quote(quote(first['uuid'], safe=''), safe='')}/participants")
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/html")
    assert "Cloudflare" in r.text
    ok = api.get(f"/report/meetings/{quote(quote(second['uuid'], safe=''), safe='')}"
                 "/participants")
    assert ok.status_code == 200


def test_token_revoked_mid_run(fakezoom_server: FakeZoomServer) -> None:
    app = fakezoom_server.fake.account(0).s2s_app
    api = _api(fakezoom_server)
    _admin(fakezoom_server, revoke_after={app.client_id: 3})
    codes = [api.get("/users/me").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 401, 401]
    assert _api(fakezoom_server).get("/users/me").status_code == 200


def test_clearing_faults_through_the_admin_endpoint(fakezoom_server: FakeZoomServer) -> None:
    _admin(fakezoom_server, error_rate=1.0)
    assert httpx.delete(f"{fakezoom_server.base_url}/_fake/faults").json()["error_rate"] == 0
    assert _api(fakezoom_server).get("/users/me").status_code == 200
