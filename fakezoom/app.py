"""ASGI app of the fake: Zoom's OAuth token endpoint, the `/v2` REST subset and `/_fake` admin.

Order of checks on `/v2`, as a gateway would do them: bearer token (401/124), scope (400/4711),
rate limit (429), plan prerequisite (400/200), then the operation. Faults are applied after the
rate limiter, so a faulted request still counts against the budget as it would at Zoom.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import calendar
import dataclasses
import datetime as dt
import email.utils
import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from fakezoom.core import AccessToken, Account, App, FakeZoom, Limited
from fakezoom.data import month_span

# ------------------------------------------------------------------------------------ errors


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def _bad(message: str) -> ApiError:
    return ApiError(400, 300, message)


# ------------------------------------------------------------------------------------ operations


@dataclass
class Operation:
    method: str
    template: str  # as in the spec, e.g. /users/{userId}
    category: str
    scopes: tuple[str, ...]  # any one of them is enough (classic or granular)
    handler: Callable[[Ctx], dict[str, Any]]
    paid_only: bool = False
    min_plan: str | None = None
    # Zoom's /roles documents the older 4700 wording; the others answer 4711.
    scope_code: int = 4711


@dataclass
class Ctx:
    fake: FakeZoom
    request: Request
    account: Account
    app: App
    token: AccessToken
    op: Operation
    query: dict[str, str]
    path: dict[str, str]
    is_page: bool = False
    items: int = 0
    extra_headers: dict[str, str] = field(default_factory=dict)
    raw_response: Response | None = None


PLAN_ORDER = {"free": 0, "pro": 1, "business": 2}
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _int(ctx: Ctx, name: str, default: int) -> int:
    raw = ctx.query.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise _bad(f"Invalid field: {name}.") from None


def _page_size(ctx: Ctx) -> int:
    size = _int(ctx, "page_size", 30)
    # Zoom caps larger sizes at the maximum rather than refusing them.
    if size <= 0:
        return 30
    return min(size, 300)


def _paginate(ctx: Ctx, total: int, fetch: Callable[[int, int], list[Any]]
              ) -> tuple[dict[str, Any], list[Any]]:
    """Token pagination bound to the query (minus paging params); tokens are HMAC-signed."""
    size = _page_size(ctx)
    q = sorted((k, v) for k, v in ctx.query.items()
               if k not in ("next_page_token", "page_size", "page_number"))
    key = f"{ctx.account.id}|{ctx.op.template}|{json.dumps(ctx.path, sort_keys=True)}|{q}"
    token = ctx.query.get("next_page_token", "")
    if token:
        offset = ctx.fake.read_page_token(token, key)
        if offset is None:
            raise _bad("The next page token is invalid or expired.")
    else:
        offset = max(0, _int(ctx, "page_number", 1) - 1) * size
    items = fetch(offset, size) if offset < total else []
    nxt = offset + len(items)
    ctx.is_page = True
    ctx.items = len(items)
    meta = {
        "page_count": math.ceil(total / size) if total else 0,
        "page_number": offset // size + 1,
        "page_size": size,
        "total_records": total,
        "next_page_token": ctx.fake.page_token(key, nxt) if nxt < total else "",
    }
    return meta, items


def _add_months(d: dt.date, months: int) -> dt.date:
    y, m = divmod(d.month - 1 + months, 12)
    y, m = d.year + y, m + 1
    return dt.date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def _date_param(ctx: Ctx, name: str, default: dt.date | None) -> dt.date:
    raw = ctx.query.get(name)
    if not raw:
        if default is None:
            raise _bad(f"Invalid parameter: {name}.")
        return default
    if not DATE_RE.match(raw):
        raise _bad(f"Invalid date format: {name}. Use yyyy-mm-dd.")
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise _bad(f"Invalid date: {name}.") from None


def _report_range(ctx: Ctx, required: bool) -> tuple[dt.date, dt.date]:
    today = ctx.fake.clock.today()
    start = _date_param(ctx, "from", None if required else today)
    end = _date_param(ctx, "to", None if required else today)
    if end < start:
        raise _bad("The 'to' date must be later than the 'from' date.")
    if month_span(start, end):
        raise _bad("The date range must be one month at most.")
    if start < _add_months(today, -6):
        raise _bad("Only provide report in recent 6 months.")
    return start, end


def _user_index(ctx: Ctx, key: str) -> int | None:
    if key == "me":
        return ctx.app.owner_index
    return ctx.account.data.index_of(key)


# ------------------------------------------------------------------------------------ handlers


def list_users(ctx: Ctx) -> dict[str, Any]:
    status = ctx.query.get("status") or "active"
    if status not in ("active", "inactive", "pending"):
        raise _bad(f"Invalid field: status {status}.")
    data = ctx.account.data
    idx: Any = data.users_with_status(status)
    role_id = ctx.query.get("role_id")
    if role_id:
        idx = [i for i in idx if data.role_of(i) == role_id]
    custom = ctx.query.get("include_fields") == "custom_attributes"
    meta, users = _paginate(ctx, len(idx), lambda o, n: [
        ctx.account.list_user(i, custom) for i in idx[o:o + n]
    ])
    return {**meta, "users": users}


def get_user(ctx: Ctx) -> dict[str, Any]:
    key = ctx.path["userId"]
    i = _user_index(ctx, key)
    if i is None:
        raise ApiError(404, 1001, f"User does not exist: {key}.")
    rec = ctx.account.user(ctx.account.user_id(i))
    if rec["status"] == "pending":
        # Zoom documents that pending users' created_at shows the time of the API call.
        rec["created_at"] = dt.datetime.fromtimestamp(
            int(ctx.fake.clock.now()), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return rec


def list_groups(ctx: Ctx) -> dict[str, Any]:
    groups = ctx.account.groups()
    return {"total_records": len(groups), "groups": groups}


def group_members(ctx: Ctx) -> dict[str, Any]:
    gid = ctx.path["groupId"]
    data = ctx.account.data
    if gid not in data.group_ids:
        raise ApiError(404, 4130, f"Group does not exist: {gid}.")
    idx = data.group_members(gid)
    meta, members = _paginate(ctx, len(idx), lambda o, n: [
        ctx.account.member(i) for i in idx[o:o + n]
    ])
    return {**meta, "members": members}


def list_roles(ctx: Ctx) -> dict[str, Any]:
    roles = ctx.account.roles()
    return {"total_records": len(roles), "roles": roles}


def get_role(ctx: Ctx) -> dict[str, Any]:
    role = ctx.account.role(ctx.path["roleId"])
    if role is None:
        # The spec lists both 300 "Role not found" and 400/1034; zoom-api.md and /members: 1034.
        raise ApiError(400, 1034, "Role does not exist.")
    return role


def role_members(ctx: Ctx) -> dict[str, Any]:
    rid = ctx.path["roleId"]
    data = ctx.account.data
    if rid not in data.role_ids:
        raise ApiError(400, 1034, "Role does not exist.")
    idx = data.role_members(rid)
    meta, members = _paginate(ctx, len(idx), lambda o, n: [
        ctx.account.member(i, role=True) for i in idx[o:o + n]
    ])
    return {**meta, "members": members}


def report_activities(ctx: Ctx) -> dict[str, Any]:
    start, end = _report_range(ctx, required=False)
    data = ctx.account.data
    # Live sign-ins (fakezoom/webhooks.py) are the newest: they come first.
    live = ctx.fake.webhooks.live.between(ctx.account.id, start, end)
    total = len(live) + data.count_events(start, end)
    meta, logs = _paginate(ctx, total, lambda o, n: live[o:o + n] + data.events_slice(
        start, end, max(0, o - len(live)), n - len(live[o:o + n])))
    return {"from": start.isoformat(), "to": end.isoformat(), "page_size": meta["page_size"],
            "next_page_token": meta["next_page_token"], "activity_logs": logs}


def report_users(ctx: Ctx) -> dict[str, Any]:
    start, end = _report_range(ctx, required=True)
    typ = ctx.query.get("type") or "active"
    if typ not in ("active", "inactive"):
        raise _bad(f"Invalid field: type {typ}.")
    rows = ctx.account.host_usage(start, end, typ)
    gid = ctx.query.get("group_id")
    if gid:
        members = set(ctx.account.data.group_members(gid)) if gid in \
            ctx.account.data.group_ids else set()
        ids = {ctx.account.user_id(i) for i in members}
        rows = [r for r in rows if r["id"] in ids]
    meta, users = _paginate(ctx, len(rows), lambda o, n: rows[o:o + n])
    return {
        "from": start.isoformat(), "to": end.isoformat(), **meta,
        "total_meetings": sum(r["meetings"] for r in rows),
        "total_participants": sum(r["participants"] for r in rows),
        "total_meeting_minutes": sum(r["meeting_minutes"] for r in rows),
        "users": users,
    }


def report_user_meetings(ctx: Ctx) -> dict[str, Any]:
    key = ctx.path["userId"]
    start, end = _report_range(ctx, required=True)
    typ = ctx.query.get("type") or "past"
    if typ not in ("past", "pastOne", "pastJoined"):
        raise _bad(f"Invalid field: type {typ}.")
    i = _user_index(ctx, key)
    if i is None:
        raise ApiError(404, 1001, f"User {key} not exist or not belong to this account.")
    data = ctx.account.data
    ms = data.user_meetings(i, start, end, joined=typ == "pastJoined")
    if typ == "pastOne":
        ms = ms[-1:]
    meta, meetings = _paginate(ctx, len(ms), lambda o, n: [
        data.meeting_report(m) for m in ms[o:o + n]
    ])
    meta.pop("page_number")
    return {"from": start.isoformat(), "to": end.isoformat(), **meta, "meetings": meetings}


def _meeting_key(raw: str) -> str:
    """Zoom's gateway decodes the path once and collapses '//', then the id is decoded again.

    Starlette already decoded once, so collapse slashes the way a router would (a UUID that
    starts with '/' or holds '//' is mangled unless it was double-encoded), then decode again.
    """
    collapsed = re.sub(r"/+", "/", raw).lstrip("/")
    return unquote(collapsed)


def report_participants(ctx: Ctx) -> dict[str, Any]:
    key = _meeting_key(ctx.path["meetingId"])
    faults = ctx.fake.config.faults
    if faults.html_403_meeting_uuid and key == faults.html_403_meeting_uuid:
        ctx.fake.stats_counters.faults["html_403"] += 1
        ctx.raw_response = Response(CLOUDFLARE_403, status_code=403, media_type="text/html")
        return {}
    data = ctx.account.data
    m = data.find_meeting(key)
    if m is None:
        raise ApiError(404, 3001, f"Meeting {key} not found or has expired.")
    if ctx.fake.clock.now() - m.start > 365 * 86400:
        raise ApiError(400, 12702, "Can not access meeting a year ago.")
    parts = data.participants(m)
    with_reg = ctx.query.get("include_fields") == "registrant_id"

    def render(p: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in p.items() if not k.startswith("_")}
        if with_reg:
            out["registrant_id"] = ""
        return out

    meta, items = _paginate(ctx, len(parts), lambda o, n: [render(p) for p in parts[o:o + n]])
    meta.pop("page_number")
    return {**meta, "participants": items}


def report_daily(ctx: Ctx) -> dict[str, Any]:
    today = ctx.fake.clock.today()
    year = _int(ctx, "year", today.year)
    month = _int(ctx, "month", today.month)
    if not 1 <= month <= 12 or not 1970 <= year <= 9999:
        raise _bad("Invalid field: month.")
    first = dt.date(year, month, 1)
    if first < _add_months(today.replace(day=1), -6) or first > today:
        raise _bad("Daily report can only be provided for a month that falls within the "
                   "recent 6 months.")
    return {"year": year, "month": month, "dates": ctx.account.daily(year, month)}


OPLOG_TYPES = ("all", "user", "user_settings", "account", "billing", "im", "recording",
               "phone_contacts", "webinar", "sub_account", "role", "zoom_rooms")


def report_operationlogs(ctx: Ctx) -> dict[str, Any]:
    start, end = _report_range(ctx, required=True)
    cat = ctx.query.get("category_type") or "all"
    if cat not in OPLOG_TYPES:
        raise _bad(f"Invalid field: category_type {cat}.")
    logs = ctx.account.operation_logs(start, end, cat)
    meta, items = _paginate(ctx, len(logs), lambda o, n: logs[o:o + n])
    return {"next_page_token": meta["next_page_token"], "page_size": meta["page_size"],
            "operation_logs": items}


def metrics_meetings(ctx: Ctx) -> dict[str, Any]:
    start, end = _report_range(ctx, required=True)
    typ = ctx.query.get("type") or "live"
    if typ not in ("past", "pastOne", "live"):
        raise _bad(f"Invalid field: type {typ}.")
    data = ctx.account.data
    ms = [] if typ == "live" else [
        data.meeting(d, j) for d in data.data_days(start, end) for j in range(data.meetings_on(d))
    ]

    def render(m: Any) -> dict[str, Any]:
        rep = data.meeting_report(m)
        host = data.record(m.host)
        secs = m.duration_min * 60
        return {
            "uuid": m.uuid, "id": m.id, "topic": m.topic, "host": rep["user_name"],
            "email": rep["user_email"], "user_type": "Licensed" if host["type"] == 2 else "Basic",
            "dept": host.get("dept", ""), "start_time": rep["start_time"],
            "end_time": rep["end_time"],
            "duration": f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}",
            "participants": m.participants_count, "in_room_participants": 0,
            "has_pstn": False, "has_voip": True, "has_3rd_party_audio": False,
            "has_video": True, "has_screen_share": rep["has_screen_share"],
            "has_recording": rep["has_recording"], "has_sip": False, "has_archiving": False,
            "custom_keys": [],
        }

    meta, items = _paginate(ctx, len(ms), lambda o, n: [render(m) for m in ms[o:o + n]])
    meta.pop("page_number")
    return {"from": start.isoformat(), "to": end.isoformat(), **meta, "meetings": items}


def _scopes(*names: str) -> tuple[str, ...]:
    return names


OPERATIONS = [
    Operation("GET", "/users", "Medium",
              _scopes("user:read:admin", "user:read:list_users:admin"), list_users),
    Operation("GET", "/users/{userId}", "Light",
              _scopes("user:read:admin", "user:read", "user:read:user:admin", "user:read:user"),
              get_user),
    Operation("GET", "/groups", "Medium",
              _scopes("group:read:admin", "group:read:list_groups:admin"), list_groups,
              paid_only=True),
    Operation("GET", "/groups/{groupId}/members", "Medium",
              _scopes("group:read:admin", "group:read:list_members:admin"), group_members,
              paid_only=True),
    Operation("GET", "/roles", "Medium",
              _scopes("role:read:admin", "role:read:list_roles:admin"), list_roles,
              paid_only=True, scope_code=4700),
    # Zoom's spec: Light, scope role:read:admin; the granular name follows Zoom's pattern
    # (user:read:user:admin for GET /users/{userId}), inferred.
    Operation("GET", "/roles/{roleId}", "Light",
              _scopes("role:read:admin", "role:read:role:admin"), get_role, paid_only=True),
    Operation("GET", "/roles/{roleId}/members", "Medium",
              _scopes("role:read:admin", "role:read:list_members:admin"), role_members,
              paid_only=True),
    Operation("GET", "/report/activities", "Heavy",
              _scopes("report:read:admin", "report:read:user_activities:admin"),
              report_activities, paid_only=True),
    Operation("GET", "/report/users", "Heavy",
              _scopes("report:read:admin", "report:read:list_users:admin"), report_users,
              paid_only=True),
    Operation("GET", "/report/users/{userId}/meetings", "Heavy",
              _scopes("report:read:admin", "report:read:user:admin"), report_user_meetings,
              paid_only=True),
    Operation("GET", "/report/meetings/{meetingId}/participants", "Heavy",
              _scopes("report:read:admin", "report:read:list_meeting_participants:admin"),
              report_participants, paid_only=True),
    Operation("GET", "/report/daily", "Heavy",
              _scopes("report:read:admin", "report:read:daily_usage:admin"), report_daily,
              paid_only=True),
    Operation("GET", "/report/operationlogs", "Heavy",
              _scopes("report:read:admin", "report:read:operation_logs:admin"),
              report_operationlogs, paid_only=True),
    Operation("GET", "/metrics/meetings", "Resource-intensive",
              _scopes("dashboard_meetings:read:admin", "dashboard:read:admin",
                      "dashboard:read:list_meetings:admin"),
              metrics_meetings, min_plan="business"),
]

CLOUDFLARE_403 = """<!DOCTYPE html>
<html><head><title>Attention Required! | Cloudflare</title></head>
<body><div class="cf-error-details"><h1>Sorry, you have been blocked</h1>
<h2>You are unable to access zoom.us</h2>
<p>Cloudflare Ray ID: 7f1e2d3c4b5a6978</p></div></body></html>
"""


# ------------------------------------------------------------------------------------ responses


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status_code=status,
                    media_type="application/json;charset=UTF-8", headers=headers)


def _error(err: ApiError) -> Response:
    return _json(err.status, {"code": err.code, "message": err.message}, err.headers)


class DroppedResponse(Response):
    """Sends the headers (with the full Content-Length) and half the body, then hangs up."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002 - the ASGI signature of Response.__call__
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2],
                    "more_body": True})
        # Returning without the final body message makes uvicorn close the connection.


def _retry_after(fake: FakeZoom, lim: Limited) -> str:
    seconds = max(1, math.ceil(lim.retry_after))
    if fake.config.retry_after_as_date:
        return email.utils.formatdate(fake.clock.now() + seconds, usegmt=True)
    return str(seconds)


def _limited_response(fake: FakeZoom, lim: Limited) -> Response:
    headers = {"Retry-After": _retry_after(fake, lim)}
    if not fake.config.omit_optional_headers:
        headers.update({
            "X-RateLimit-Category": lim.category,
            "X-RateLimit-Type": lim.type,
            "X-RateLimit-Limit": str(lim.limit),
            "X-RateLimit-Remaining": "0",
        })
    return _json(429, {"code": 429, "message": lim.message}, headers)


def _roll(fake: FakeZoom, rate: float) -> bool:
    return rate > 0 and fake.fault_rng.random() < rate


def _take(faults: Any, counter: str, rate_name: str, endpoint_name: str | None,
          template: str, fake: FakeZoom) -> bool:
    target = getattr(faults, endpoint_name) if endpoint_name else None
    if target and target not in template:
        return False
    if getattr(faults, counter) > 0:
        setattr(faults, counter, getattr(faults, counter) - 1)
        return True
    return _roll(fake, getattr(faults, rate_name))


def make_endpoint(fake: FakeZoom, op: Operation) -> Callable[[Request], Awaitable[Response]]:
    endpoint_name = f"{op.method} {op.template}"

    async def endpoint(request: Request) -> Response:
        account_key = "-"
        with fake.lock:
            try:
                resp, account_key = _handle(fake, op, request)
            except ApiError as err:
                resp = _error(err)
            fake.stats_counters.requests[(account_key, endpoint_name, resp.status_code)] += 1
            latency = fake.config.faults.latency_ms
        if latency:
            await asyncio.sleep(latency / 1000)
        return resp

    return endpoint


def _handle(fake: FakeZoom, op: Operation, request: Request) -> tuple[Response, str]:
    auth = request.headers.get("authorization", "")
    raw = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    tok = fake.tokens.get(raw)
    now = fake.clock.now()
    if tok is None or tok.revoked:
        raise ApiError(401, 124, "Invalid access token.")
    if tok.expires <= now:
        raise ApiError(401, 124, "Access token is expired.")
    account = fake.accounts[tok.account_id]
    app = fake.apps[tok.client_id]
    faults = fake.config.faults
    if tok.client_id in fake.revoke_counters:
        if fake.revoke_counters[tok.client_id] <= 0:
            del fake.revoke_counters[tok.client_id]
            faults.revoke_after.pop(tok.client_id, None)
            fake.revoke_tokens(tok.client_id)
            fake.stats_counters.faults["revoked"] += 1
            raise ApiError(401, 124, "Invalid access token.")
        fake.revoke_counters[tok.client_id] -= 1
    if not tok.scopes.intersection(op.scopes):
        if op.scope_code == 4700:
            msg = f"Invalid access token, does not contain {op.scopes[0]} scope."
        else:
            msg = f"Invalid access token, does not contain scopes:[{', '.join(op.scopes)}]."
        return _error(ApiError(400, op.scope_code, msg)), account.id
    if fake.config.rate_limits_enabled:
        lim = fake.limiter.check(account.id, account.plan, op.category, now)
        if lim is not None:
            fake.stats_counters.limited[(account.id, lim.category, lim.type)] += 1
            return _limited_response(fake, lim), account.id
    if op.paid_only and account.plan == "free":
        return _error(ApiError(400, 200, f"Only available for paid account: {account.id}.")
                      ), account.id
    if op.min_plan and PLAN_ORDER[account.plan] < PLAN_ORDER[op.min_plan]:
        return _error(ApiError(400, 200, "No permission.")), account.id
    if _take(faults, "error_next", "error_rate", None, op.template, fake):
        fake.stats_counters.faults["5xx"] += 1
        status = faults.error_status
        return _json(status, {"code": status, "message": "Internal Error"}), account.id
    ctx = Ctx(fake, request, account, app, tok, op, dict(request.query_params),
              dict(request.path_params))
    try:
        body = op.handler(ctx)
    except ApiError as err:
        return _error(err), account.id
    if ctx.raw_response is not None:
        return ctx.raw_response, account.id
    endpoint_name = f"{op.method} {op.template}"
    if ctx.is_page:
        fake.stats_counters.pages[(account.id, endpoint_name)] += 1
        fake.stats_counters.items[(account.id, endpoint_name)] += ctx.items
    text = json.dumps(body, ensure_ascii=False)
    listy = ctx.is_page or op.template in ("/groups", "/roles")
    if listy and _take(faults, "malformed_json_next", "malformed_json_rate",
                       "malformed_json_endpoint", op.template, fake):
        fake.stats_counters.faults["malformed_json"] += 1
        return Response(text[: max(1, len(text) // 2)], status_code=200,
                        media_type="application/json;charset=UTF-8"), account.id
    if _take(faults, "drop_connection_next", "drop_connection_rate", "drop_connection_endpoint",
             op.template, fake):
        fake.stats_counters.faults["dropped"] += 1
        return DroppedResponse(text.encode(), status_code=200,
                               media_type="application/json;charset=UTF-8"), account.id
    return Response(text, status_code=200, media_type="application/json;charset=UTF-8"
                    ), account.id


# ------------------------------------------------------------------------------------ oauth


def _oauth_error(status: int, reason: str, error: str) -> Response:
    return _json(status, {"reason": reason, "error": error})


def make_oauth(fake: FakeZoom) -> Callable[[Request], Awaitable[Response]]:
    async def token(request: Request) -> Response:
        params = dict(parse_qsl(request.url.query))
        body = await request.body()
        ctype = request.headers.get("content-type", "")
        if body and "application/x-www-form-urlencoded" in ctype:
            params.update(parse_qsl(body.decode("utf-8", "replace")))
        grant = params.get("grant_type", "")
        client_id = "-"
        with fake.lock:
            resp, client_id = _oauth(fake, request, params, grant)
            fake.stats_counters.tokens[(client_id, grant or "-", resp.status_code)] += 1
        return resp

    return token


def _oauth(fake: FakeZoom, request: Request, params: dict[str, str], grant: str
           ) -> tuple[Response, str]:
    auth = request.headers.get("authorization", "")
    client_id = secret = ""
    if auth[:6].lower() == "basic ":
        try:
            client_id, _, secret = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id = secret = ""
    app = fake.apps.get(client_id)
    if app is None or not secret or secret != app.client_secret:
        return _oauth_error(400, "Invalid client_id or client_secret", "invalid_client"), "-"
    if app.disabled:
        return _oauth_error(400, "The application has been disabled by this account admin.",
                            "invalid_client"), app.client_id
    if grant not in ("account_credentials", "refresh_token") or grant != app.grant_type:
        return _oauth_error(400, "unsupported grant type", "unsupported_grant_type"
                            ), app.client_id
    if grant == "account_credentials":
        account_id = params.get("account_id", "")
        if not account_id:
            return _oauth_error(400, "Missing account_id", "invalid_request"), app.client_id
        if account_id != app.account_id:
            return _oauth_error(400, "Invalid account_id", "invalid_request"), app.client_id
    else:
        rt = params.get("refresh_token", "")
        if not rt:
            return _oauth_error(400, "Missing refresh_token", "invalid_request"), app.client_id
        if rt != app.refresh_token:
            return _oauth_error(400, "Invalid Token!", "invalid_grant"), app.client_id
    tok = fake.issue_access_token(app)
    out: dict[str, Any] = {
        "access_token": tok.token,
        "token_type": "bearer",
        "expires_in": int(tok.expires - tok.issued),
        "scope": " ".join(app.scopes),
        "api_url": str(request.base_url).rstrip("/"),
    }
    if grant == "refresh_token":
        out["refresh_token"] = fake.rotate_refresh_token(app)
    return _json(200, out), app.client_id


# ------------------------------------------------------------------------------------ admin


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    return json.loads(raw) if raw else {}


def make_admin_routes(fake: FakeZoom) -> list[Route]:
    def acc(request: Request) -> Account:
        key = request.path_params["account"]
        return fake.account(int(key) if key.isdigit() else key)

    async def stats(_request: Request) -> Response:
        return _json(200, fake.stats())

    async def reset_stats(_request: Request) -> Response:
        fake.reset_stats()
        return _json(200, {"ok": True})

    async def credentials(_request: Request) -> Response:
        return _json(200, {"accounts": fake.credentials()})

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            body = await _body(request)
            with fake.lock:
                if "frozen" in body:
                    fake.clock.freeze(bool(body["frozen"]))
                if "set" in body:
                    fake.clock.set(float(body["set"]))
                if "advance" in body:
                    fake.clock.advance(float(body["advance"]))
        return _json(200, {"now": fake.clock.now(), "frozen": fake.clock.frozen})

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            fake.clear_faults()
        elif request.method == "POST":
            fake.set_faults(**(await _body(request)))
        return _json(200, dataclasses.asdict(fake.config.faults))

    async def config(request: Request) -> Response:
        if request.method == "POST":
            fake.configure(**(await _body(request)))
        cfg = dataclasses.asdict(fake.config)
        cfg.pop("accounts")
        return _json(200, cfg)

    async def reset_limits(_request: Request) -> Response:
        fake.reset_rate_limits()
        return _json(200, {"ok": True})

    async def revoke(request: Request) -> Response:
        body = await _body(request)
        n = fake.revoke_tokens(request.path_params["client_id"], bool(body.get("refresh")))
        return _json(200, {"revoked": n})

    async def users(request: Request) -> Response:
        a = acc(request)
        if request.method == "POST":
            return _json(201, a.add_user(**(await _body(request))))
        return _json(200, {"users": a.all_users(request.query_params.get("status"))})

    async def user(request: Request) -> Response:
        a, key = acc(request), request.path_params["user"]
        try:
            if request.method == "DELETE":
                a.delete_user(key)
                return Response(status_code=204)
            if request.method == "PATCH":
                a.update_user(key, **(await _body(request)))
            return _json(200, a.user(key))
        except KeyError:
            return _json(404, {"error": f"no user {key}"})

    async def user_action(request: Request) -> Response:
        a, key = acc(request), request.path_params["user"]
        action, body = request.path_params["action"], await _body(request)
        try:
            if action == "rename":
                a.rename_user(key, body["first_name"], body["last_name"])
            elif action == "deactivate":
                a.deactivate_user(key)
            elif action == "activate":
                a.activate_user(key)
            elif action == "move_group":
                a.move_user_group(key, body.get("from_group"), body.get("to_group"))
            else:
                return _json(404, {"error": f"no action {action}"})
        except KeyError as exc:
            return _json(404, {"error": f"not found: {exc}"})
        return _json(200, a.user(key))

    async def truth(request: Request) -> Response:
        a, what = acc(request), request.path_params["what"]
        q = request.query_params
        if what == "groups":
            return _json(200, {"groups": a.groups()})
        if what == "roles":
            return _json(200, {"roles": a.roles()})
        if what == "group_members":
            return _json(200, {"members": a.group_members(q["group_id"])})
        if what == "role_members":
            return _json(200, {"members": a.role_members(q["role_id"])})
        if what == "events":
            return _json(200, {"activity_logs": a.events(q["from"], q["to"])})
        if what == "meetings":
            return _json(200, {"meetings": a.meetings(q["from"], q["to"], q.get("user"))})
        return _json(404, {"error": f"unknown {what}"})

    async def delete_meeting(request: Request) -> Response:
        acc(request).delete_meeting(unquote(request.path_params["uuid"]))
        return Response(status_code=204)

    return [
        Route("/_fake/stats", stats, methods=["GET"]),
        Route("/_fake/reset_stats", reset_stats, methods=["POST"]),
        Route("/_fake/credentials", credentials, methods=["GET"]),
        Route("/_fake/clock", clock, methods=["GET", "POST"]),
        Route("/_fake/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_fake/config", config, methods=["GET", "POST"]),
        Route("/_fake/rate_limits/reset", reset_limits, methods=["POST"]),
        Route("/_fake/apps/{client_id}/revoke", revoke, methods=["POST"]),
        Route("/_fake/accounts/{account}/users", users, methods=["GET", "POST"]),
        Route("/_fake/accounts/{account}/users/{user}", user,
              methods=["GET", "PATCH", "DELETE"]),
        Route("/_fake/accounts/{account}/users/{user}/{action}", user_action, methods=["POST"]),
        Route("/_fake/accounts/{account}/truth/{what}", truth, methods=["GET"]),
        Route("/_fake/accounts/{account}/meetings/{uuid:path}", delete_meeting,
              methods=["DELETE"]),
    ]


# ------------------------------------------------------------------------------------ factory


def create_app(fake: FakeZoom) -> Starlette:
    routes = [Route("/oauth/token", make_oauth(fake), methods=["POST"])]
    for op in OPERATIONS:
        path = op.template.replace("{meetingId}", "{meetingId:path}")
        routes.append(Route(f"/v2{path}", make_endpoint(fake, op), methods=[op.method]))
    routes += make_admin_routes(fake)

    async def not_found(_request: Request, _exc: Exception) -> Response:
        return _json(404, {"code": 404, "message": "Not Found"})

    async def not_allowed(_request: Request, _exc: Exception) -> Response:
        return _json(405, {"code": 405, "message": "Method Not Allowed"})

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    app.state.fake = fake
    return app
