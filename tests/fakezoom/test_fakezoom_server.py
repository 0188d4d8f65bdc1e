"""The server under concurrent load, and `python -m fakezoom` as a subprocess."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from fakezoom.server import FakeZoomServer
from fakezoom.testing import get_token, subprocess_fakezoom


def test_concurrent_clients_are_all_served_and_counted(fakezoom_server: FakeZoomServer) -> None:
    fake = fakezoom_server.fake
    fake.configure(rate_limits_enabled=False)
    token = get_token(fakezoom_server, fake.account(0).s2s_app)["access_token"]

    def work(n: int) -> list[int]:
        with httpx.Client(base_url=fakezoom_server.api_url,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            return [c.get("/users", params={"page_size": 5}).status_code for _ in range(n)]

    with ThreadPoolExecutor(8) as pool:
        results = [code for codes in pool.map(work, [10] * 8) for code in codes]
    assert results == [200] * 80
    stats = fake.stats()["accounts"][fake.account(0).id]["by_endpoint"]["GET /users"]
    assert stats["requests"] == 80


def test_module_entry_point_serves_and_reports_credentials() -> None:
    with subprocess_fakezoom("--accounts", "2", "--users", "30", "--days", "5",
                             "--plan", "business", "--seed", "4") as info:
        assert len(info["accounts"]) == 2
        acc = info["accounts"][1]
        assert acc["plan"] == "business"
        s2s = next(a for a in acc["apps"] if a["kind"] == "s2s")
        general = next(a for a in acc["apps"] if a["kind"] == "general")
        assert general["refresh_token"]
        r = httpx.post(info["oauth_token_url"], auth=(s2s["client_id"], s2s["client_secret"]),
                       data={"grant_type": "account_credentials", "account_id": acc["account_id"]})
        assert r.status_code == 200
        users = httpx.get(f"{info['api_url']}/users", params={"page_size": 300},
                          headers={"Authorization": f"Bearer {r.json()['access_token']}"})
        assert users.status_code == 200
        stats = httpx.get(f"{info['base_url']}/_fake/stats").json()
        assert stats["token_requests_total"] == 1
