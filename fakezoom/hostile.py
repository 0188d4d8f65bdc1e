"""A hostile Zoom: answers that Zoom's OpenAPI document allows but the faithful fake never gives.

`fakezoom.app` follows Zoom's documents *and* the habits of real Zoom (ids on every user, honest
page tokens, short strings). This one keeps only the documents: every body it serves validates
against the operation's 200 response schema, yet

- page tokens never repeat and may never end (``paging="endless"``), pages may be empty but carry
  a token (``"empty_pages"``), ``total_records`` may promise fewer items than are served
  (``"lying_total"``) or tokens may come back again (``"repeat"``);
- items may hold only the required fields (a `/users` item needs only ``email`` and ``type``),
  unknown extra fields, strings far longer than our old columns, any Unicode, timestamps with
  offsets, meeting UUIDs with ``+ / // =``.

Items come from the caller (a test draws them from the response schemas with
hypothesis-jsonschema, see `item_schema`) or from `odd_data`. It is a plain function of the
request (`HostileZoom.handle`), mounted as an `httpx.MockTransport` (`transport()`, fast, for
property tests) or served over HTTP (`asgi()`, for anything that needs a URL).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx

PAGINGS = ("honest", "endless", "empty_pages", "lying_total", "repeat")

# Our name of each list -> (spec path, items key). The spec paths are the OpenAPI document's.
LISTS: dict[str, tuple[str, str]] = {
    "users": ("/users", "users"),
    "groups": ("/groups", "groups"),
    "group_members": ("/groups/{groupId}/members", "members"),
    "roles": ("/roles", "roles"),
    "role_members": ("/roles/{roleId}/members", "members"),
    "activities": ("/report/activities", "activity_logs"),
    "report_users": ("/report/users", "users"),
    "meetings": ("/report/users/{userId}/meetings", "meetings"),
    "participants": ("/report/meetings/{meetingId}/participants", "participants"),
    "daily": ("/report/daily", "dates"),
    "operation_logs": ("/report/operationlogs", "operation_logs"),
}
# Unpaged answers: the whole list at once (zoom-api.md "Pagination").
WHOLE = {"groups", "roles", "daily"}
EXTRA = {"x_hostile_unknown": {"nested": [1, "two", None]}, "zz_new_field": "\u2603"}


def item_schema(name: str) -> dict[str, Any]:
    """The JSON schema of one item of list ``name``, from Zoom's OpenAPI document."""
    from fakezoom.spec import load_spec, to_json_schema

    spec = load_spec()
    path, key = LISTS[name]
    op = spec["paths"][path]["get"]
    schema = to_json_schema(op["responses"]["200"]["content"]["application/json"]["schema"], spec)
    return dict(_find_items(schema, key))


def _find_items(schema: dict[str, Any], key: str) -> dict[str, Any]:
    props = schema.get("properties") or {}
    if key in props:
        return dict(props[key].get("items") or {})
    for part in schema.get("allOf", []) + schema.get("anyOf", []) + schema.get("oneOf", []):
        found = _find_items(part, key)
        if found:
            return found
    return {}


@dataclass
class HostileZoom:
    """Serves ``data`` (list name -> items) on Zoom's paths with the chosen ``paging``."""

    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    paging: str = "honest"
    # Items per page at most, whatever page_size asked (Zoom may serve fewer).
    serve: int = 2
    extra_fields: bool = True
    # Every request as (path, decoded meeting UUID or None), for round-trip checks.
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    _nonce: itertools.count[int] = field(default_factory=itertools.count)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._httpx)

    def _httpx(self, request: httpx.Request) -> httpx.Response:
        status, body = self.handle(request.url.raw_path.decode().split("?", 1)[0],
                                   dict(request.url.params))
        return httpx.Response(status, content=body,
                              headers={"content-type": "application/json"})

    def asgi(self) -> Callable[..., Any]:
        """The same answers as an ASGI app (for uvicorn)."""

        async def app(scope: dict[str, Any], _receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            from urllib.parse import parse_qsl

            raw = scope.get("raw_path") or scope["path"].encode()
            query = dict(parse_qsl(scope.get("query_string", b"").decode()))
            status, body = self.handle(raw.decode().split("?", 1)[0], query)
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})

        return app

    # -- routing ---------------------------------------------------------------------------

    def handle(self, raw_path: str, query: dict[str, str]) -> tuple[int, bytes]:
        path = raw_path.split("/v2", 1)[-1] if "/v2" in raw_path else raw_path
        parts = path.strip("/").split("/")
        meeting: str | None = None
        if parts[:1] == ["oauth"]:
            return 200, _dump({"access_token": "hostile", "token_type": "bearer",
                               "expires_in": 3600, "scope": ""})
        if path == "/users/me":
            return 200, _dump({"id": "me", "account_id": "hostile-account", "email": "me@x.io",
                               "type": 2})
        if path == "/users":
            name = "users"
        elif len(parts) == 3 and parts[0] == "groups" and parts[2] == "members":
            name = "group_members"
        elif path == "/groups":
            name = "groups"
        elif len(parts) == 3 and parts[0] == "roles" and parts[2] == "members":
            name = "role_members"
        elif path == "/roles":
            name = "roles"
        elif path == "/report/activities":
            name = "activities"
        elif path == "/report/users":
            name = "report_users"
        elif len(parts) == 4 and parts[:2] == ["report", "users"] and parts[3] == "meetings":
            name = "meetings"
        elif len(parts) == 4 and parts[:2] == ["report", "meetings"]:
            name = "participants"
            meeting = decode_meeting_segment(parts[2])
        elif path == "/report/daily":
            name = "daily"
        elif path == "/report/operationlogs":
            name = "operation_logs"
        else:
            return 404, _dump({"code": 404, "message": f"no such path {path}"})
        self.requests.append((path, meeting))
        items = [self._dress(i) for i in self.data.get(name, [])]
        if name == "users":
            status = query.get("status", "active")
            items = [i for i in items if status_of(i) == status]
        key = LISTS[name][1]
        if name in WHOLE:
            body: dict[str, Any] = {key: items}
            if name != "daily":
                body["total_records"] = len(items)
            return 200, _dump(body)
        return 200, _dump(self._page(key, items, query))

    def _dress(self, item: dict[str, Any]) -> dict[str, Any]:
        return {**item, **EXTRA} if self.extra_fields else dict(item)

    def _page(self, key: str, items: list[dict[str, Any]], query: dict[str, str]
              ) -> dict[str, Any]:
        size = max(1, min(int(query.get("page_size") or 30), self.serve))
        token = query.get("next_page_token") or ""
        offset = int(token.split(".", 1)[0]) if token else 0
        nonce = next(self._nonce)
        chunk = items[offset:offset + size]
        more = offset + size < len(items)
        body: dict[str, Any] = {key: chunk, "page_size": size}
        if self.paging == "honest":
            body["total_records"] = len(items)
            body["next_page_token"] = f"{offset + size}.{nonce}" if more else ""
        elif self.paging == "endless":
            # Items cycle forever, every token is new, no total to check against.
            cycled = items * (1 + (offset + size) // max(1, len(items))) if items else []
            body[key] = cycled[offset:offset + size] or [{}] * 0
            body["next_page_token"] = f"{offset + size}.{nonce}"
        elif self.paging == "empty_pages":
            body["next_page_token"] = f"{offset + size}.{nonce}"
        elif self.paging == "lying_total":
            body["total_records"] = max(0, len(items) // 2)
            body["next_page_token"] = f"{offset + size}.{nonce}" if more else ""
        elif self.paging == "repeat":
            body["next_page_token"] = "0.same" if more or not token else ""
        return body


def status_of(item: dict[str, Any]) -> str:
    status = item.get("status")
    return status if status in ("active", "inactive", "pending") else "active"


def _dump(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


def decode_meeting_segment(segment: str) -> str:
    """What Zoom reads from a participants path segment: decoded once, and once more when that
    gives a UUID that had to be encoded twice (starts with ``/`` or contains ``//``)."""
    once = unquote(segment)
    twice = unquote(once)
    return twice if twice != once and (twice.startswith("/") or "//" in twice) else once


# -- hand-made odd data ------------------------------------------------------------------

ODD_UUIDS = ("/abc+def//ghi==", "ab//cd+ef/gh=", "+/+/==", "plain" + "Q" * 200 + "==")


def odd_data(today: date) -> dict[str, list[dict[str, Any]]]:
    """One of each oddity the spec allows, dated inside the last few days before ``today``."""
    day = today - timedelta(days=2)
    at = datetime(day.year, day.month, day.day, 12, 0, 0)
    long_id = "U" * 100
    users = [
        {"id": long_id, "email": "Long.Id@Example.com", "type": 2, "status": "active",
         "employee_unique_id": "E" * 300, "last_client_version": "5." * 75,
         "timezone": "T" * 80, "first_name": "Zoë", "last_name": "Ωmega 🎉",
         "created_at": at.isoformat() + "+05:30", "group_ids": ["g/1", "g+2"],
         "custom_attributes": [{"key": "k", "name": "n", "value": "v" * 500}]},
        {"email": "pending.only@example.com", "type": 1, "status": "pending"},
        {"email": "required.only@example.com", "type": 1},
        {"id": "inactive-1", "email": "old@example.com", "type": 1, "status": "inactive",
         "last_login_time": at.isoformat() + "-11:00", "dept": "Ünïcødé " * 16},
    ]
    members = [{"id": long_id, "email": "Long.Id@Example.com", "type": 2},
               {"email": "pending.only@example.com", "type": 1}]
    activities = [
        {"email": "Long.Id@Example.com", "time": at.isoformat() + "+02:00", "type": "Sign in",
         "ip_address": "2001:db8::" + "f" * 70, "client_type": "C" * 80, "version": "9" * 150},
        {"email": "required.only@example.com", "time": at.isoformat() + "Z",
         "type": "Sign out"},
        {"email": "far@example.com", "time": "2001-01-01T00:00:00Z", "type": "Sign in"},
        {"email": "no-time@example.com", "type": "Sign in"},
    ]
    report_users = [{"id": long_id, "email": "Long.Id@Example.com", "meetings": 2,
                     "participants": 5, "meeting_minutes": 30, "user_name": "名前"}]
    meetings = [{"uuid": u, "id": 8_000_000_000 + i, "topic": "議題 " * 300,
                 "start_time": at.isoformat() + "+09:00", "end_time": at.isoformat() + "Z",
                 "duration": 30, "participants_count": 2, "user_email": "Long.Id@Example.com"}
                for i, u in enumerate(ODD_UUIDS)]
    participants: list[dict[str, Any]] = [
        {"id": long_id, "user_id": "1" * 90, "name": "Zoë 🎉", "user_email": "Long.Id@Example.com",
         "join_time": at.isoformat() + "Z", "leave_time": at.isoformat() + "+00:00",
         "duration": 60, "status": "in_meeting"},
        {},
        {"name": "Guest without anything else"},
    ]
    daily = [{"date": day.isoformat(), "new_users": 1, "meetings": 2, "participants": 3,
              "meeting_minutes": 4}]
    logs = [{"time": at.isoformat() + "-03:30", "operator": "admin@example.com",
             "category_type": "User", "action": "Update", "operation_detail": "d" * 5000}]
    return {"users": users, "groups": [{"id": "g/1", "name": "Group ✓", "total_members": 2}],
            "group_members": members, "roles": [{"id": "r+1", "name": "Rôle"}],
            "role_members": members, "activities": activities, "report_users": report_users,
            "meetings": meetings, "participants": participants, "daily": daily,
            "operation_logs": logs}


# -- spec-generated data -----------------------------------------------------------------
# hypothesis-jsonschema would do this, but its object strategy calls a private Hypothesis API
# (`cu.many(...).more()`) that current Hypothesis (6.170) no longer has; the item schemas of
# Zoom's document use a small subset of JSON Schema, translated here.

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def strategy_for(schema: dict[str, Any], name: str = "") -> Any:
    """A Hypothesis strategy of values valid against ``schema`` (a translated item schema)."""
    from hypothesis import strategies as st

    if "allOf" in schema:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            merged.setdefault("properties", {}).update(part.get("properties") or {})
            merged["required"] = [*merged.get("required", []), *part.get("required", [])]
            merged.setdefault("type", part.get("type"))
        return strategy_for(merged, name)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type") or ("object" if "properties" in schema else None)
    if kind == "object":
        props = schema.get("properties") or {}
        required = [k for k in schema.get("required", []) if k in props]
        return st.fixed_dictionaries(
            {k: strategy_for(props[k], k) for k in required},
            optional={k: strategy_for(v, k) for k, v in props.items() if k not in required},
        )
    if kind == "array":
        return st.lists(strategy_for(schema.get("items") or {}, name), max_size=3)
    if kind == "integer":
        return st.one_of(st.integers(0, 1000), st.integers(-(2**63), 2**63 - 1))
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        return _string(schema, name)
    return st.none() | st.booleans() | st.integers() | st.text(max_size=20)


def _string(schema: dict[str, Any], name: str) -> Any:
    from hypothesis import strategies as st

    fmt = schema.get("format")
    if fmt == "date-time":
        return st.builds(_stamp, st.datetimes(datetime(2000, 1, 1), datetime(2035, 1, 1)),
                         st.sampled_from(["Z", "+05:30", "-11:00", "+14:00", "+00:00"]))
    if fmt == "date":
        return st.dates(date(2000, 1, 1), date(2035, 1, 1)).map(date.isoformat)
    if fmt == "email":
        return st.emails()
    top = schema.get("maxLength")
    low = schema.get("minLength", 0)
    if name == "uuid":  # base64 meeting UUIDs, with the characters that need encoding
        return st.text(alphabet=B64, min_size=max(1, low), max_size=top or 200)
    short = st.text(min_size=low, max_size=min(top or 40, 40))
    if top is not None and top <= 100:
        return st.text(min_size=low, max_size=top)
    # Now and then far longer than any column we used to have: the spec sets no maximum.
    return st.one_of(short, st.text(min_size=100, max_size=top or 400))


def _stamp(when: datetime, offset: str) -> str:
    return when.replace(microsecond=0).isoformat() + offset
