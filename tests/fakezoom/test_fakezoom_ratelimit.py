"""Per-account, per-category rate limits: per-second windows and the shared daily cap."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Iterator

import httpx
import pytest

from fakezoom.config import AccountSpec, AppSpec, FakeZoomConfig
from fakezoom.server import FakeZoomServer
from fakezoom.testing import api_client, running_fakezoom

QPS_BODY = {"code": 429, "message": "You have reached the maximum per-second rate limit for "
            "this API. Try again later."}
SCOPES = ["user:read:admin", "report:read:admin", "dashboard_meetings:read:admin"]


def _server(plan: str = "pro", **settings: object) -> FakeZoomConfig:
    apps = [AppSpec(kind="s2s", scopes=SCOPES), AppSpec(kind="general", scopes=SCOPES)]
    return FakeZoomConfig(seed=5, plan=plan, frozen_clock=True,  # type: ignore[arg-type]
                          accounts=[AccountSpec(users=20, days=5, apps=apps),
                                    AccountSpec(users=20, days=5, apps=apps)],
                          **settings)  # type: ignore[arg-type]


@pytest.fixture
def pro() -> Iterator[FakeZoomServer]:
    # Pro at 0.2: Light 6/s, Medium 4/s, Heavy 2/s.
    with running_fakezoom(_server(rate_scale=0.2)) as srv:
        yield srv


def _client(server: FakeZoomServer, account: int = 0, kind: str = "s2s") -> httpx.Client:
    acc = server.fake.account(account)
    app = acc.s2s_app if kind == "s2s" else acc.general_app
    return api_client(server, app)


def _codes(client: httpx.Client, url: str, n: int, **params: str) -> list[int]:
    return [client.get(url, params=params).status_code for _ in range(n)]


def test_429_comes_once_the_per_second_budget_is_spent_and_not_before(pro: FakeZoomServer
                                                                     ) -> None:
    api = _client(pro)
    assert _codes(api, "/users", 4) == [200] * 4
    r = api.get("/users")
    assert r.status_code == 429
    assert r.json() == QPS_BODY
    assert r.headers["Retry-After"] == "1"
    assert r.headers["X-RateLimit-Category"] == "Medium"
    assert r.headers["X-RateLimit-Type"] == "QPS"
    assert r.headers["X-RateLimit-Limit"] == "4"
    assert r.headers["X-RateLimit-Remaining"] == "0"
    # Other categories have their own budget.
    assert _codes(api, "/users/me", 6) == [200] * 6
    assert api.get("/users/me").status_code == 429


def test_a_429_consumes_nothing_and_the_next_second_has_a_fresh_budget(pro: FakeZoomServer
                                                                      ) -> None:
    api = _client(pro)
    assert _codes(api, "/users", 9) == [200] * 4 + [429] * 5
    pro.fake.advance(1)
    assert _codes(api, "/users", 5) == [200] * 4 + [429]
    stats = pro.fake.stats()["accounts"][pro.fake.account(0).id]
    assert stats["rate_limited"] == 6
    assert stats["rate_limited_by"] == {"Medium/QPS": 6}


def test_the_budget_is_per_account_and_shared_by_its_apps(pro: FakeZoomServer) -> None:
    s2s, general, other = _client(pro), _client(pro, kind="general"), _client(pro, account=1)
    assert _codes(s2s, "/users", 2) == [200, 200]
    assert _codes(general, "/users", 2) == [200, 200]
    assert general.get("/users").status_code == 429
    assert s2s.get("/users").status_code == 429
    assert _codes(other, "/users", 4) == [200] * 4


def test_the_daily_cap_is_shared_between_heavy_and_resource_intensive() -> None:
    # Business: 60,000 a day scaled to 5.
    with running_fakezoom(_server("business", daily_scale=5 / 60000)) as srv:
        api = _client(srv)
        rng = {"from": (srv.fake.anchor - dt.timedelta(days=3)).isoformat(),
               "to": srv.fake.anchor.isoformat(), "type": "past"}
        assert _codes(api, "/report/daily", 3) == [200] * 3
        assert _codes(api, "/metrics/meetings", 2, **rng) == [200] * 2
        for url, params in (("/report/daily", {}), ("/metrics/meetings", rng)):
            r = api.get(url, params=params)
            assert r.status_code == 429
            assert r.headers["X-RateLimit-Type"] == "Daily-limit"
            assert "GMT 00:00:00" in r.json()["message"]
            assert "5" in r.json()["message"]
            assert int(r.headers["Retry-After"]) <= 86400
        # Light and Medium are outside the shared cap.
        assert api.get("/users").status_code == 200
        srv.fake.advance(int(api.get("/report/daily").headers["Retry-After"]))
        assert _client(srv).get("/report/daily").status_code == 200  # the old token expired


def test_resource_intensive_is_limited_per_minute() -> None:
    with running_fakezoom(_server("business", rate_scale=0.1)) as srv:
        api = _client(srv)
        rng = {"from": srv.fake.anchor.isoformat(), "to": srv.fake.anchor.isoformat()}
        assert _codes(api, "/metrics/meetings", 3, **rng) == [200, 200, 429]
        assert 1 <= int(api.get("/metrics/meetings", params=rng).headers["Retry-After"]) <= 60


def test_optional_headers_can_be_omitted_and_retry_after_sent_as_a_date() -> None:
    with running_fakezoom(_server(rate_scale=0.05, omit_optional_headers=True,
                                  retry_after_as_date=True)) as srv:
        api = _client(srv)
        assert _codes(api, "/users", 1) == [200]
        r = api.get("/users")
        assert r.status_code == 429
        assert not [h for h in r.headers if h.lower().startswith("x-ratelimit")]
        when = email.utils.parsedate_to_datetime(r.headers["Retry-After"])
        assert when.timestamp() >= srv.fake.now()


def test_free_plan_has_per_category_daily_limits() -> None:
    with running_fakezoom(_server("free", daily_scale=0.001)) as srv:
        api = _client(srv)  # Medium: 2/s and 2 a day
        assert _codes(api, "/users", 3) == [200, 200, 429]
        srv.fake.advance(1)
        r = api.get("/users")
        assert (r.status_code, r.headers["X-RateLimit-Type"]) == (429, "Daily-limit")


def test_limits_can_be_switched_off(pro: FakeZoomServer) -> None:
    pro.fake.configure(rate_limits_enabled=False)
    assert set(_codes(_client(pro), "/users", 12)) == {200}
