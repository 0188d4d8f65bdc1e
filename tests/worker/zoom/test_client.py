"""ZoomClient against httpx.MockTransport: retries, auth refresh, 429s, errors, pagination."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from worker.zoom.client import (
    NoLimiter,
    ZoomClient,
    encode_meeting_uuid,
    parse_missing_scopes,
    parse_retry_after,
)
from worker.zoom.errors import (
    ZoomAuthError,
    ZoomBadResponse,
    ZoomError,
    ZoomForbidden,
    ZoomNotFound,
    ZoomRateLimited,
    ZoomScopeError,
    ZoomServerError,
    ZoomUnavailable,
)
from worker.zoom.pagination import items_of

API = "https://api.test/v2"


@dataclass
class Tok:
    access_token: str


@dataclass
class FakeTokens:
    """Hands out tok-1, tok-2... ; invalidate() moves to the next one like a refresh would."""

    n: int = 1
    invalidated: list[str] = field(default_factory=list)

    def get_token(self) -> Tok:
        return Tok(f"tok-{self.n}")

    def invalidate(self, token: Tok) -> bool:
        self.invalidated.append(token.access_token)
        if token.access_token == f"tok-{self.n}":
            self.n += 1
        return True


@dataclass
class RecordingLimiter:
    acquired: list[str] = field(default_factory=list)
    drained: list[tuple[str, float]] = field(default_factory=list)

    def acquire(self, category: str, max_wait: float | None = None) -> None:  # noqa: ARG002 - the Limiter protocol's parameter, passed by keyword
        self.acquired.append(category)

    def drain(self, category: str, seconds: float) -> None:
        self.drained.append((category, seconds))

    def throttled(self, category: str, headers: Any, *, daily: bool = False) -> bool:
        return NoLimiter.throttled(self, category, headers, daily=daily)  # type: ignore[arg-type]

    def observe(self, category: str, headers: Any) -> None:
        pass


def make_client(handler: Any, **kw: Any) -> tuple[ZoomClient, FakeTokens, RecordingLimiter]:
    tokens = FakeTokens()
    limiter = RecordingLimiter()
    sleeps: list[float] = []
    client = ZoomClient(
        "src-1", tokens, limiter, httpx.Client(transport=httpx.MockTransport(handler)), API,
        timeout=5, max_retries=kw.pop("max_retries", 4), deadline_seconds=kw.pop("deadline", 60),
        sleep=sleeps.append,
    )
    return client, tokens, limiter


def zoom_error(status: int, code: int, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message}, headers=headers)


def test_get_sends_bearer_token_and_returns_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "u1", "account_id": "acc"})

    client, _, limiter = make_client(handler)
    assert client.get("/users/me") == {"id": "u1", "account_id": "acc"}
    assert seen[0].headers["Authorization"] == "Bearer tok-1"
    assert str(seen[0].url) == f"{API}/users/me"
    assert limiter.acquired == ["light"]


def test_pagination_follows_next_page_token_and_yields_every_item_once() -> None:
    items = [{"id": str(i)} for i in range(7)]
    requests: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        requests.append(q)
        size = 3
        start = int(q.get("next_page_token") or 0)
        chunk = items[start:start + size]
        nxt = str(start + size) if start + size < len(items) else ""
        return httpx.Response(200, json={"users": chunk, "next_page_token": nxt,
                                         "page_size": int(q["page_size"])})

    client, _, _ = make_client(handler)
    pages = list(client.iter_pages("/users", {"status": "active"}, "users"))
    assert [p.number for p in pages] == [1, 2, 3]
    assert all("users" not in p.raw for p in pages)
    assert [i["id"] for p in pages for i in p.items] == [str(i) for i in range(7)]
    assert all(q["page_size"] == "300" and q["status"] == "active" for q in requests)
    assert [i["id"] for i in items_of(client.iter_pages("/users", None, "users"))] == [
        str(i) for i in range(7)
    ]


def test_transient_failures_are_retried_then_succeed() -> None:
    calls = {"n": 0}

    def handler(_request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused")
        if calls["n"] == 2:
            raise httpx.ReadTimeout("slow")
        if calls["n"] == 3:
            raise httpx.RemoteProtocolError("peer closed connection")
        if calls["n"] == 4:
            return httpx.Response(503, text="unavailable")
        return httpx.Response(200, json={"ok": True})

    client, _, _ = make_client(handler)
    assert client.get("/users") == {"ok": True}
    assert calls["n"] == 5


def test_persistent_5xx_raises_server_error_after_max_retries() -> None:
    calls = {"n": 0}

    def handler(_request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return zoom_error(502, 0, "bad gateway")

    client, _, _ = make_client(handler, max_retries=2)
    with pytest.raises(ZoomServerError) as info:
        client.get("/users")
    assert info.value.retryable
    assert info.value.status == 502
    assert calls["n"] == 3


def test_persistent_connection_errors_raise_unavailable() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client, _, _ = make_client(handler, max_retries=1)
    with pytest.raises(ZoomUnavailable) as info:
        client.get("/users")
    assert info.value.retryable


def test_deadline_stops_retries() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client, _, _ = make_client(handler, max_retries=100, deadline=0.0001)
    with pytest.raises(ZoomUnavailable):
        client.get("/users")


def test_code_124_invalidates_the_failing_token_and_retries_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer tok-1":
            return zoom_error(401, 124, "Invalid access token.")
        return httpx.Response(200, json={"ok": 1})

    client, tokens, _ = make_client(handler)
    assert client.get("/users") == {"ok": 1}
    assert tokens.invalidated == ["tok-1"]


def test_second_401_is_an_auth_error_not_a_loop() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return zoom_error(401, 124, "Invalid access token.")

    client, tokens, _ = make_client(handler)
    with pytest.raises(ZoomAuthError) as info:
        client.get("/users")
    assert info.value.code == 124
    assert info.value.status == 401
    assert tokens.invalidated == ["tok-1"]
    assert "tok-" not in str(info.value) + repr(info.value)


@pytest.mark.parametrize("status", [400, 401])
def test_scope_errors_name_the_missing_scopes(status: int) -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return zoom_error(status, 4711, "Invalid access token, does not contain scopes:"
                          "[role:read:admin, role:read:list_roles:admin].")

    client, tokens, _ = make_client(handler)
    with pytest.raises(ZoomScopeError) as info:
        client.get("/roles")
    assert info.value.missing == ["role:read:admin", "role:read:list_roles:admin"]
    assert info.value.code == 4711
    assert "role:read:admin" in info.value.admin_message
    assert tokens.invalidated == []


def test_scope_error_4700_without_names_names_the_endpoint_scope_in_the_apps_family() -> None:
    client, tokens, _ = make_client(
        lambda _r: zoom_error(400, 4700, "Invalid access token, does not contain scopes.")
    )
    with pytest.raises(ZoomScopeError) as info:
        client.get("/report/activities")
    # A token that carries no scope list: the classic name.
    assert info.value.missing == ["report:read:admin"]
    assert info.value.code == 4700

    @dataclass
    class GranularTok:
        access_token: str
        scopes: list[str]

    tokens.get_token = lambda: GranularTok(  # type: ignore[method-assign]
        "tok-g", ["user:read:list_users:admin", "report:read:list_meeting_participants:admin"])
    with pytest.raises(ZoomScopeError) as info:
        client.get("/report/activities")
    assert info.value.missing == ["report:read:user_activities:admin"]
    assert "report:read:admin" not in info.value.admin_message


def test_rate_limit_honours_retry_after_drains_the_bucket_and_retries() -> None:
    calls = {"n": 0}

    def handler(_request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return zoom_error(429, 429, "You have reached the maximum per-second rate limit "
                              "for this API. Try again later.", **{"Retry-After": "2"})
        return httpx.Response(200, json={"ok": 1})

    client, _, limiter = make_client(handler)
    assert client.get("/report/activities") == {"ok": 1}
    assert limiter.drained == [("heavy", 2.0)]
    assert limiter.acquired == ["heavy", "heavy"]


def test_rate_limit_without_retry_after_uses_a_default_wait() -> None:
    calls = {"n": 0}

    def handler(_request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return zoom_error(429, 429, "You have reached the maximum per-second rate limit.")
        return httpx.Response(200, json={"ok": 1})

    client, _, limiter = make_client(handler)
    client.get("/users")
    assert limiter.drained
    assert limiter.drained[0][1] > 0


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-RateLimit-Type": "Daily-limit"}, "Too many requests."),
        ({}, "You have reached the maximum daily rate limit for this API. Requests resume at "
             "GMT 00:00:00."),
    ],
)
def test_daily_cap_raises_at_once(headers: dict[str, str], message: str) -> None:
    calls = {"n": 0}

    def handler(_request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return zoom_error(429, 429, message, **headers)

    client, _, limiter = make_client(handler)
    with pytest.raises(ZoomRateLimited) as info:
        client.get("/report/activities")
    assert info.value.daily
    assert not info.value.retryable
    assert calls["n"] == 1
    assert limiter.drained == []


def test_persistent_per_second_429_gives_up_as_rate_limited() -> None:
    client, _, _ = make_client(lambda _r: zoom_error(429, 429, "per-second"), max_retries=2)
    with pytest.raises(ZoomRateLimited) as info:
        client.get("/users")
    assert not info.value.daily
    assert info.value.retryable


def test_html_403_is_a_skippable_forbidden_not_an_auth_error() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, text="<html><body>Attention Required! | Cloudflare</body>",
                              headers={"content-type": "text/html"})

    client, tokens, _ = make_client(handler)
    with pytest.raises(ZoomForbidden) as info:
        client.get("/report/meetings/abc/participants")
    assert isinstance(info.value, ZoomNotFound)
    assert not isinstance(info.value, ZoomAuthError)
    assert tokens.invalidated == []


@pytest.mark.parametrize("code", [3001, 1001, 4130])
def test_404_is_not_found_with_zoom_code(code: int) -> None:
    client, _, _ = make_client(lambda _r: zoom_error(404, code, "Meeting does not exist."))
    with pytest.raises(ZoomNotFound) as info:
        client.get("/report/meetings/123/participants")
    assert info.value.code == code
    assert info.value.status == 404


def test_other_4xx_carry_the_zoom_code() -> None:
    client, _, _ = make_client(lambda _r: zoom_error(400, 12702, "older than a year"))
    with pytest.raises(ZoomError) as info:
        client.get("/report/meetings/1/participants")
    assert type(info.value) is ZoomError
    assert info.value.code == 12702
    assert not info.value.retryable


@pytest.mark.parametrize("body", [b'{"users": [{"id": 1}', b"<html>oops</html>", b"[1, 2]"])
def test_malformed_body_raises_bad_response(body: bytes) -> None:
    client, _, _ = make_client(lambda _r: httpx.Response(200, content=body))
    with pytest.raises(ZoomBadResponse):
        list(items_of(client.iter_pages("/users", None, "users")))


def test_items_of_the_wrong_shape_raise_bad_response() -> None:
    client, _, _ = make_client(lambda _r: httpx.Response(200, json={"users": {"id": 1}}))
    with pytest.raises(ZoomBadResponse):
        list(items_of(client.iter_pages("/users", None, "users")))


def test_repeated_page_token_raises_instead_of_looping() -> None:
    client, _, _ = make_client(
        lambda _r: httpx.Response(200, json={"users": [{"id": "1"}], "next_page_token": "same"})
    )
    with pytest.raises(ZoomBadResponse):
        list(items_of(client.iter_pages("/users", None, "users")))


def test_meeting_uuids_with_slashes_are_encoded_twice_and_survive_httpx() -> None:
    assert encode_meeting_uuid("abc==") == "abc%3D%3D"
    assert encode_meeting_uuid("/ab+c==") == "%252Fab%252Bc%253D%253D"
    assert encode_meeting_uuid("ab//c") == "ab%252F%252Fc"
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"participants": []})

    client, _, _ = make_client(handler)
    path = f"/report/meetings/{encode_meeting_uuid('/ab//c==')}/participants"
    list(items_of(client.iter_pages(path, None, "participants")))
    assert seen[0].startswith("/v2/report/meetings/%252Fab%252F%252Fc%253D%253D/participants")


def test_parse_retry_after_seconds_http_date_and_iso() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:25 GMT", now) == pytest.approx(5.0)
    assert parse_retry_after("2023-11-14T22:13:30Z", now) == pytest.approx(10.0)
    assert parse_retry_after("garbage", now) is None


def test_parse_missing_scopes() -> None:
    assert parse_missing_scopes("does not contain scopes:[a:b, c:d]") == ["a:b", "c:d"]
    assert parse_missing_scopes("does not contain scopes") == []
    assert parse_missing_scopes("Invalid access token, does not contain role:read:admin "
                                "scope.") == ["role:read:admin"]


def test_no_limiter_waits_after_drain() -> None:
    slept: list[float] = []
    limiter = NoLimiter(sleep=slept.append)
    limiter.acquire("light")
    limiter.drain("light", 5)
    limiter.acquire("light")
    assert slept
    assert 4 < slept[0] <= 5


def test_errors_never_show_the_token_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    calls = {"n": 0}

    def handler(_request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return zoom_error(401, 124, "Invalid access token.")
        if calls["n"] == 2:
            return zoom_error(429, 429, "per-second", **{"Retry-After": "0"})
        return httpx.Response(200, json={})

    caplog.set_level(logging.DEBUG)
    client, _, _ = make_client(handler)
    client.get("/users")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "tok-" not in text
    assert "Bearer" not in text
    assert json.dumps([r.args for r in caplog.records], default=str).count("tok-") == 0


def _endless(body: Any) -> Any:
    """A server that answers every page with `body(n)` for the n-th request."""
    calls = {"n": 0}

    def handler(_request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(200, json=body(calls["n"]))

    handler.calls = calls  # type: ignore[attr-defined]
    return handler


@pytest.mark.parametrize(
    ("body", "words"),
    [
        # A fresh token on every page and no total: only the hard cap ends it.
        (lambda n: {"users": [{"id": str(n)}], "next_page_token": f"t{n}"}, "the cap per call"),
        (lambda n: {"users": [], "next_page_token": f"t{n}"}, "empty page with a next_page_token"),
        (lambda n: {"users": [{"id": str(n)}] * 2, "next_page_token": f"t{n}",
                    "total_records": 3}, "more than the total_records=3"),
        # 10 items at page_size 300 allow 1 page (+2 margin); the 3rd page still has a token.
        (lambda n: {"users": [{"id": str(n)}], "next_page_token": f"t{n}", "page_size": 300,
                    "total_records": 10}, "3 pages and still a next_page_token"),
        (lambda _n: {"users": [{"id": "1"}], "next_page_token": "same"}, "repeated"),
    ],
)
def test_pagination_always_ends_with_a_named_error(body: Any, words: str) -> None:
    handler = _endless(body)
    client, _, _ = make_client(handler)
    client.max_pages = 25
    with pytest.raises(ZoomBadResponse) as info:
        list(client.iter_pages("/users", {"status": "active"}, "users"))
    err = info.value
    assert words in err.message
    assert "GET /users page " in err.message
    assert "src-1" in err.message
    assert "GET /users page " in err.admin_message
    assert "failed" in err.admin_message
    assert "retry" not in err.admin_message
    assert handler.calls["n"] <= 25


def test_a_list_that_grew_while_paged_is_still_read_whole() -> None:
    # total_records rises from 6 to 7 between pages: within the margin, nothing is refused.
    def body(n: int) -> dict[str, Any]:
        items = [{"id": f"{n}-{i}"} for i in range(3)] if n < 3 else [{"id": "3-0"}]
        return {"users": items, "next_page_token": f"t{n}" if n < 3 else "",
                "page_size": 3, "total_records": 6 if n == 1 else 7}

    client, _, _ = make_client(_endless(body))
    items = list(items_of(client.iter_pages("/users", {"page_size": 3}, "users")))
    assert len(items) == 7


def test_truncated_json_names_endpoint_and_page_and_says_the_run_failed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("next_page_token"):
            return httpx.Response(200, content=b'{"users": [{"id": "2"')
        return httpx.Response(200, json={"users": [{"id": "1"}], "next_page_token": "p2"})

    client, _, _ = make_client(handler)
    with pytest.raises(ZoomBadResponse) as info:
        list(client.iter_pages("/users", None, "users"))
    assert "GET /users page 2" in info.value.admin_message
    assert "failed" in info.value.admin_message
    assert "retry" not in info.value.admin_message
