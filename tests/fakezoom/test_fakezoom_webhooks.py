"""fakezoom's webhooks: signed like Zoom's, retried on failure, dropped/duplicated/reordered
on request; live sign-ins appear in /report/activities too."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fakezoom.config import AccountSpec, FakeZoomConfig
from fakezoom.core import FakeZoom
from fakezoom.server import FakeZoomServer
from fakezoom.testing import api_client

SECRET = "fake-secret"


class Receiver:
    """A tiny HTTP endpoint that records what it gets and fails the first `fail` requests."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()

        async def hook(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                self.got.append((dict(request.headers), body))
                if self.fail > 0:
                    self.fail -= 1
                    return Response(status_code=500)
            return Response(status_code=200)

        config = uvicorn.Config(Starlette(routes=[Route("/hook", hook, methods=["POST"])]),
                                host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(b) for _, b in self.got]


@pytest.fixture
def fake() -> Iterator[FakeZoom]:
    fake = FakeZoom(FakeZoomConfig(seed=3, accounts=[AccountSpec(users=20, days=3)],
                                   rate_limits_enabled=False))
    yield fake
    fake.webhooks.close()


def test_events_are_signed_as_zoom_documents(fake: FakeZoom) -> None:
    acc = fake.account(0)
    with Receiver() as rx:
        fake.webhooks.configure(url=rx.url, secret=SECRET, threads=1)  # in order
        user = acc.all_users("active")[0]
        acc.sign_in(user["id"], client_type="Win")
        acc.deactivate_user(user["id"])
        acc.update_user(user["id"], first_name="Renamed")
        added = acc.add_user(first_name="Neo")
        acc.delete_user(added["id"])
        assert fake.webhooks.flush(10)
        events = rx.events()
        assert [e["event"] for e in events] == [
            "user.signed_in", "user.deactivated", "user.updated", "user.created",
            "user.deleted"]
        for headers, body in rx.got:
            ts = headers["x-zm-request-timestamp"]
            mac = hmac.new(SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256)
            assert headers["x-zm-signature"] == "v0=" + mac.hexdigest()
            assert abs(int(ts) - time.time()) < 60
        signed_in = events[0]["payload"]
        assert signed_in["account_id"] == acc.id
        assert set(signed_in["object"]) == {"id", "email", "date_time", "client_type",
                                            "version", "login_type"}
        assert events[2]["payload"]["object"] == {"id": user["id"], "first_name": "Renamed"}


def test_live_sign_ins_are_listed_by_the_activities_report(fake: FakeZoom) -> None:
    acc = fake.account(0)
    user = acc.all_users("active")[1]
    event = acc.sign_in(user["id"], ip_address="203.0.113.9")
    day = event["time"][:10]
    with FakeZoomServer(fake) as server, api_client(server, acc.s2s_app) as client:
        body = client.get("/report/activities", params={"from": day, "to": day,
                                                        "page_size": 300}).json()
    assert body["activity_logs"][0] == event
    assert event in acc.events(day, day)


def test_failed_deliveries_are_retried_and_shares_are_dropped_or_duplicated(fake: FakeZoom
                                                                            ) -> None:
    acc = fake.account(0)
    users = acc.all_users("active")
    with Receiver(fail=2) as rx:
        fake.webhooks.configure(url=rx.url, secret=SECRET, retry_scale=0.001, threads=1)
        acc.sign_in(users[0]["id"])
        assert fake.webhooks.flush(10)
        assert len(rx.got) == 3  # two 500s, then delivered on the second retry
        assert fake.webhooks.truth()["delivered"] == 1

    with Receiver() as rx:
        fake.webhooks.configure(url=rx.url, drop_rate=0.3, duplicate_rate=0.3,
                                reorder_rate=0.3, seed=5)
        for n in range(100):
            acc.sign_in(users[n % len(users)]["id"], when=time.time() - 100 + n)
        assert fake.webhooks.flush(20)
        truth = fake.webhooks.truth()
        dropped = len(truth["dropped"])
        assert 10 < dropped < 50
        assert truth["duplicated"] > 10
        assert len(rx.got) == 100 - dropped + truth["duplicated"]
        times = [e["payload"]["object"]["date_time"] for e in rx.events()]
        assert times != sorted(times)  # reordered
