"""The fake Zoom's state: accounts, apps, tokens, rate limits, faults, stats and the clock.

`FakeZoom` is both what the ASGI app serves and the ground-truth handle tests hold. One re-entrant
lock guards everything: the server thread and a test thread mutate it at the same time, and every
operation is short.
"""

from __future__ import annotations

import base64
import calendar
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import random
import secrets
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fakezoom.config import AccountSpec, AppSpec, FakeZoomConfig, FaultConfig
from fakezoom.data import STATUSES, AccountData, Meeting, _opaque, digest, iso
from fakezoom.webhooks import WebhookSender, sign_in_event, user_object

UTC = dt.UTC

# Zoom's published table (developers.zoom.us/docs/api/rest/rate-limits), per account.
PER_SECOND: dict[str, dict[str, int]] = {
    "free": {"Light": 4, "Medium": 2, "Heavy": 1},
    "pro": {"Light": 30, "Medium": 20, "Heavy": 10},
    "business": {"Light": 80, "Medium": 60, "Heavy": 40},
}
RESOURCE_INTENSIVE_PER_MINUTE = {"free": 10, "pro": 10, "business": 20}
FREE_DAILY = {"Light": 6000, "Medium": 2000, "Heavy": 1000, "Resource-intensive": 30000}
SHARED_DAILY = {"pro": 30000, "business": 60000}
SHARED = ("Heavy", "Resource-intensive")


class Clock:
    """Real time plus an offset, or frozen. `advance` moves both kinds."""

    def __init__(self, offset: float = 0.0, frozen: bool = False) -> None:
        self._offset = offset
        self._frozen_at: float | None = time.time() + offset if frozen else None

    def now(self) -> float:
        if self._frozen_at is not None:
            return self._frozen_at
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if self._frozen_at is not None:
            self._frozen_at += seconds
        else:
            self._offset += seconds

    def set(self, ts: float) -> None:
        if self._frozen_at is not None:
            self._frozen_at = ts
        else:
            self._offset = ts - time.time()

    def freeze(self, frozen: bool = True) -> None:
        now = self.now()
        if frozen:
            self._frozen_at = now
        else:
            self._frozen_at = None
            self._offset = now - time.time()

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.now(), UTC).date()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwtish(payload: dict[str, Any], key: bytes) -> str:
    head = _b64url(json.dumps({"alg": "HS512", "v": "2.0", "kid": key.hex()[:16]}).encode())
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    sig = _b64url(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha512).digest())
    return f"{head}.{body}.{sig}"


@dataclass
class App:
    client_id: str
    client_secret: str
    kind: str  # "s2s" | "general"
    account_id: str
    scopes: list[str]
    owner_index: int = 0
    name: str = ""
    refresh_token: str | None = None
    refresh_seq: int = 0
    disabled: bool = False

    @property
    def grant_type(self) -> str:
        return "account_credentials" if self.kind == "s2s" else "refresh_token"

    def credentials(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "grant_type": self.grant_type,
            "account_id": self.account_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scopes": list(self.scopes),
        }
        if self.kind == "general":
            out["refresh_token"] = self.refresh_token
        return out


@dataclass
class AccessToken:
    token: str
    client_id: str
    account_id: str
    scopes: frozenset[str]
    issued: float
    expires: float
    revoked: bool = False


@dataclass
class Limited:
    """Why a request was refused with 429."""

    category: str
    type: str  # "QPS" | "Daily-limit"
    limit: int
    retry_after: float  # seconds
    message: str


class RateLimiter:
    """Zoom's limits per account and category.

    Per-second limits are a fixed one-second window on the fake clock keyed by (account,
    category): simple, deterministic under a frozen clock, and as strict as Zoom's published
    "N requests per second". ``rate_scale`` is the account's real limit as a share of its plan
    (other apps use the rest, or the account is limited below plan); scaled below one request
    per second, the window widens instead (0.05 x 10/s: one request per two seconds).
    Resource-intensive uses a one-minute window. Daily caps reset at GMT 00:00:00. A refused
    request is counted in stats but consumes nothing.
    """

    def __init__(self, fake: FakeZoom) -> None:
        self.fake = fake
        self.windows: dict[tuple[str, str], tuple[int, int]] = {}
        self.daily: dict[tuple[str, str], tuple[dt.date, int]] = {}

    def reset(self) -> None:
        self.windows.clear()
        self.daily.clear()

    def _window_limit(self, plan: str, category: str) -> tuple[int, int]:
        cfg = self.fake.config
        if category == "Resource-intensive":
            base, width = RESOURCE_INTENSIVE_PER_MINUTE[plan], 60
        else:
            base, width = PER_SECOND[plan][category], 1
        scaled = base * cfg.rate_scale
        if scaled < 1:
            # An account limited below one request per window (0.05 x Pro Heavy = 0.5/s): one
            # request per proportionally wider window, so the long-run rate is the scaled one.
            return 1, width * max(1, round(1 / scaled))
        return max(1, round(scaled)), width

    def _daily_bucket(self, plan: str, category: str) -> tuple[str, int] | None:
        scale = self.fake.config.daily_scale
        if plan == "free":
            return category, max(1, round(FREE_DAILY[category] * scale))
        if category in SHARED:
            return "Heavy+Resource-intensive", max(1, round(SHARED_DAILY[plan] * scale))
        return None

    def check(self, account_id: str, plan: str, category: str, now: float) -> Limited | None:
        limit, width = self._window_limit(plan, category)
        start = int(now // width) * width
        key = (account_id, category)
        w_start, used = self.windows.get(key, (start, 0))
        if w_start != start:
            used = 0
        if used >= limit:
            return Limited(
                category, "QPS", limit, start + width - now,
                "You have reached the maximum per-second rate limit for this API. "
                "Try again later.",
            )
        bucket = self._daily_bucket(plan, category)
        today = dt.datetime.fromtimestamp(now, UTC).date()
        if bucket:
            name, cap = bucket
            day, count = self.daily.get((account_id, name), (today, 0))
            if day != today:
                count = 0
            if count >= cap:
                midnight = calendar.timegm((today + dt.timedelta(days=1)).timetuple())
                label = "Heavy and Resource-intensive" if "+" in name else name
                return Limited(
                    category, "Daily-limit", cap, midnight - now,
                    f"You have reached the maximum daily rate limit ({cap}) of {label} APIs "
                    "for this account. You can resume these API requests at GMT 00:00:00.",
                )
            self.daily[(account_id, name)] = (today, count + 1)
        self.windows[key] = (start, used + 1)
        return None

    def remaining(self, account_id: str, plan: str, category: str, now: float) -> int:
        limit, width = self._window_limit(plan, category)
        start = int(now // width) * width
        w_start, used = self.windows.get((account_id, category), (start, 0))
        return max(0, limit - (used if w_start == start else 0))


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.tokens: Counter[tuple[str, str, int]] = Counter()
        self.limited: Counter[tuple[str, str, str]] = Counter()
        self.pages: Counter[tuple[str, str]] = Counter()
        self.items: Counter[tuple[str, str]] = Counter()
        self.faults: Counter[str] = Counter()

    def as_dict(self) -> dict[str, Any]:
        accounts: dict[str, dict[str, Any]] = {}

        def acc(a: str) -> dict[str, Any]:
            return accounts.setdefault(a, {
                "requests": 0, "rate_limited": 0, "pages": 0, "items": 0,
                "by_endpoint": {}, "rate_limited_by": {},
            })

        def ep(a: str, e: str) -> dict[str, Any]:
            endpoint: dict[str, Any] = acc(a)["by_endpoint"].setdefault(
                e, {"requests": 0, "pages": 0, "items": 0, "statuses": {}}
            )
            return endpoint

        for (a, e, s), n in self.requests.items():
            acc(a)["requests"] += n
            ep(a, e)["requests"] += n
            st = ep(a, e)["statuses"]
            st[str(s)] = st.get(str(s), 0) + n
        for (a, e), n in self.pages.items():
            acc(a)["pages"] += n
            ep(a, e)["pages"] += n
        for (a, e), n in self.items.items():
            acc(a)["items"] += n
            ep(a, e)["items"] += n
        for (a, cat, typ), n in self.limited.items():
            acc(a)["rate_limited"] += n
            key = f"{cat}/{typ}"
            acc(a)["rate_limited_by"][key] = acc(a)["rate_limited_by"].get(key, 0) + n
        tokens: dict[str, Any] = {}
        for (cid, grant, s), n in self.tokens.items():
            t = tokens.setdefault(cid, {"total": 0, "statuses": {}, "grants": {}})
            t["total"] += n
            t["statuses"][str(s)] = t["statuses"].get(str(s), 0) + n
            t["grants"][grant] = t["grants"].get(grant, 0) + n
        return {
            "requests_total": sum(self.requests.values()),
            "rate_limited_total": sum(self.limited.values()),
            "pages_total": sum(self.pages.values()),
            "token_requests_total": sum(self.tokens.values()),
            "accounts": accounts,
            "token_requests": tokens,
            "faults": dict(self.faults),
        }


def _public(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if not k.startswith("_")}


class Account:
    """One Zoom account: its data, apps and plan, with ground-truth views shaped like the API."""

    def __init__(self, fake: FakeZoom, index: int, spec: AccountSpec, anchor: dt.date) -> None:
        self.fake = fake
        self.index = index
        self.spec = spec
        self.plan: str = spec.plan or fake.config.plan
        seed = fake.config.seed
        self.id = _opaque(seed, index, "account", 0, 22)
        self.number = 1_000_000 + index
        self.data = AccountData(seed, index, spec, anchor, self.id)
        self.apps: list[App] = []
        for k, app_spec in enumerate(spec.apps):
            self.apps.append(self._make_app(k, app_spec))

    def _make_app(self, k: int, spec: AppSpec) -> App:
        seed = self.fake.config.seed
        app = App(
            client_id=_opaque(seed, self.index, "client-id", k, 22),
            client_secret=_opaque(seed, self.index, "client-secret", k, 32),
            kind=spec.kind,
            account_id=self.id,
            scopes=list(spec.scopes),
            owner_index=spec.owner_index,
            name=spec.name or f"{spec.kind}-{k}",
        )
        if app.kind == "general":
            app.refresh_token = self.fake._refresh_token(app)
        return app

    # ---------------------------------------------------------------- apps
    @property
    def s2s_app(self) -> App:
        return next(a for a in self.apps if a.kind == "s2s")

    @property
    def general_app(self) -> App:
        return next(a for a in self.apps if a.kind == "general")

    def add_app(self, kind: str = "s2s", scopes: list[str] | None = None,
                owner_index: int = 0, name: str | None = None) -> App:
        with self.fake.lock:
            spec = AppSpec(kind=kind,  # type: ignore[arg-type]
                           scopes=list(scopes) if scopes is not None else AppSpec().scopes,
                           owner_index=owner_index, name=name)
            app = self._make_app(len(self.apps), spec)
            self.apps.append(app)
            self.fake.apps[app.client_id] = app
            return app

    # ---------------------------------------------------------------- users
    def _index(self, key: str) -> int:
        i = self.data.index_of(key)
        if i is None:
            raise KeyError(key)
        return i

    def list_user(self, i: int, custom_attributes: bool = False) -> dict[str, Any]:
        rec = _public(self.data.record(i))
        if custom_attributes:
            rec["custom_attributes"] = [
                {"key": "cbf_cost_center", "name": "Cost center",
                 "value": f"CC-{(i * 7919) % 1000:03d}"},
            ]
        return rec

    def all_users(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every user as GET /users lists it, in API order (per status, by creation order)."""
        with self.fake.lock:
            statuses = [status] if status else list(STATUSES)
            return [self.list_user(i) for s in statuses for i in self.data.users_with_status(s)]

    def user(self, key: str) -> dict[str, Any]:
        """GET /users/{userId}: by id or email. KeyError when there is no such user."""
        with self.fake.lock:
            i = self._index(key)
            rec = _public(self.data.record(i))
            role_idx = self.data.role_ids.index(rec["role_id"]) if rec["role_id"] in \
                self.data.role_ids else 2
            rec.update({
                "account_id": self.id,
                "account_number": self.number,
                "role_name": self.data.role_names[role_idx],
                "job_title": "",
                "location": "",
                "company": "",
                "use_pmi": False,
                "personal_meeting_url": f"https://us05web.zoom.us/j/{rec['pmi']}",
                "cms_user_id": "",
                "jid": f"{rec['id'].lower()}@xmpp.zoom.us",
                "login_types": [100],
                "phone_numbers": [],
                "cluster": "us05",
            })
            return rec

    def owner(self, app: App) -> dict[str, Any]:
        return self.user(self.data.user_id(app.owner_index))

    def user_id(self, i: int) -> str:
        return self.data.user_id(i)

    # ---------------------------------------------------------------- groups and roles
    def groups(self) -> list[dict[str, Any]]:
        with self.fake.lock:
            return [
                {"id": gid, "name": name, "total_members": len(self.data.group_members(gid))}
                for gid, name in zip(self.data.group_ids, self.data.group_names, strict=True)
            ]

    def member(self, i: int, role: bool = False) -> dict[str, Any]:
        rec = self.data.record(i)
        out = {k: rec[k] for k in ("id", "email", "first_name", "last_name", "type")}
        if role:
            out["department"] = rec.get("dept", "")
        return out

    def group_members(self, group_id: str) -> list[dict[str, Any]]:
        with self.fake.lock:
            return [self.member(i) for i in self.data.group_members(group_id)]

    def roles(self) -> list[dict[str, Any]]:
        with self.fake.lock:
            d = self.data
            return [
                {"id": rid, "name": name, "description": desc,
                 "total_members": len(d.role_members(rid))}
                for rid, name, desc in zip(d.role_ids, d.role_names, d.role_descriptions,
                                           strict=True)
            ]

    def role(self, role_id: str) -> dict[str, Any] | None:
        """GET /roles/{roleId} (operationId ``getRoleInformation``): the list item plus its
        ``privileges``; None for an unknown role."""
        with self.fake.lock:
            d = self.data
            if role_id not in d.role_ids:
                return None
            i = d.role_ids.index(role_id)
            return {"id": role_id, "name": d.role_names[i], "description": d.role_descriptions[i],
                    "total_members": len(d.role_members(role_id)),
                    "privileges": list(d.role_privileges[i])}

    def role_members(self, role_id: str) -> list[dict[str, Any]]:
        with self.fake.lock:
            return [self.member(i, role=True) for i in self.data.role_members(role_id)]

    # ---------------------------------------------------------------- reports
    def events(self, start: dt.date | str, end: dt.date | str) -> list[dict[str, Any]]:
        """Sign-in/out events in [start, end] (UTC dates), newest first as the API pages them."""
        s, e = _date(start), _date(end)
        with self.fake.lock:
            live = self.fake.webhooks.live.between(self.id, s, e)
            return live + self.data.events_slice(s, e, 0, 1 << 62)

    def meetings(self, start: dt.date | str, end: dt.date | str,
                 user: str | None = None, joined: bool = False) -> list[dict[str, Any]]:
        """Meeting reports in [start, end]: of one user (id or email), or every meeting."""
        s, e = _date(start), _date(end)
        with self.fake.lock:
            if user is not None:
                ms = self.data.user_meetings(self._index(user), s, e, joined)
            else:
                ms = [self.data.meeting(d, j) for d in self.data.data_days(s, e)
                      for j in range(self.data.meetings_on(d))]
                ms = [m for m in ms if m.uuid not in self.data._deleted_meetings]
            return [self.data.meeting_report(m) for m in ms]

    def find_meeting(self, key: str) -> Meeting | None:
        return self.data.find_meeting(key)

    def participants(self, meeting: str) -> list[dict[str, Any]]:
        with self.fake.lock:
            m = self.data.find_meeting(meeting)
            if m is None:
                raise KeyError(meeting)
            return [_public(p) for p in self.data.participants(m)]

    def host_usage(self, start: dt.date | str, end: dt.date | str,
                   type: str = "active") -> list[dict[str, Any]]:
        """GET /report/users rows: hosts with meetings (active) or the other users (inactive)."""
        s, e = _date(start), _date(end)
        with self.fake.lock:
            usage = self.data.host_usage(s, e)
            idx = [i for i in self.data.all_user_indexes()
                   if self.data.status_of(i) != "pending"]
            rows = []
            for i in idx:
                if (i in usage) != (type == "active"):
                    continue
                rec = self.data.record(i)
                m, p, mins = usage.get(i, (0, 0, 0))
                rows.append({
                    "id": rec["id"], "email": rec["email"],
                    "user_name": f"{rec['first_name']} {rec['last_name']}",
                    "type": rec["type"], "dept": rec.get("dept", ""),
                    "meetings": m, "participants": p, "meeting_minutes": mins,
                })
            return rows

    def daily(self, year: int, month: int) -> list[dict[str, Any]]:
        with self.fake.lock:
            return self.data.daily(year, month, self.fake.clock.today())

    def operation_logs(self, start: dt.date | str, end: dt.date | str,
                       category_type: str | None = None) -> list[dict[str, Any]]:
        with self.fake.lock:
            return [_public(x) for x in
                    self.data.operation_logs(_date(start), _date(end), category_type)]

    # ---------------------------------------------------------------- mutations
    def add_user(self, **fields: Any) -> dict[str, Any]:
        """Add a user (default active, Basic, Member). Returns it as GET /users/{id} would."""
        with self.fake.lock:
            i = self.data.add_user(self.fake.clock.now(), **fields)
            created = self.user(self.data.user_id(i))
            how = "custCreate" if created["status"] == "active" else "create"
            self.fake.webhooks.emit(self, "user.created", user_object(created),
                                    {"creation_type": how})
            return created

    def update_user(self, user: str, **fields: Any) -> None:
        with self.fake.lock:
            i = self._index(user)
            old = self.data.record(i)
            self.data.update_user(i, self.fake.clock.now(), **fields)
            new = self.data.record(i)
            if set(fields) == {"status"} and fields["status"] in ("active", "inactive"):
                event = "user.activated" if fields["status"] == "active" else "user.deactivated"
                self.fake.webhooks.emit(self, event, user_object(new))
            else:
                self.fake.webhooks.emit(
                    self, "user.updated", {"id": new["id"], **fields},
                    {"old_object": {"id": old["id"], **{k: old.get(k) for k in fields}},
                     "time_stamp": int(self.fake.clock.now() * 1000)})

    def rename_user(self, user: str, first_name: str, last_name: str) -> None:
        self.update_user(user, first_name=first_name, last_name=last_name)

    def deactivate_user(self, user: str) -> None:
        self.update_user(user, status="inactive")

    def activate_user(self, user: str) -> None:
        self.update_user(user, status="active")

    def delete_user(self, user: str) -> None:
        with self.fake.lock:
            i = self._index(user)
            gone = user_object(self.data.record(i))
            self.data.delete_user(i, self.fake.clock.now())
            self.fake.webhooks.emit(self, "user.deleted", gone)

    def sign_in(self, user: str, **fields: Any) -> dict[str, Any]:
        """A sign-in (kind="Sign out" for a sign-out) of `user` now: listed by
        /report/activities and pushed to the webhook subscription (fakezoom/webhooks.py)."""
        return sign_in_event(self, user, **fields)

    def move_user_group(self, user: str, from_group: str | None, to_group: str | None) -> None:
        """Remove the user from from_group (if a member) and add them to to_group."""
        with self.fake.lock:
            if to_group is not None and to_group not in self.data.group_ids:
                raise KeyError(to_group)
            self.data.move_user_group(self._index(user), from_group, to_group,
                                      self.fake.clock.now())

    def delete_meeting(self, uuid: str) -> None:
        """Make a meeting disappear (participants report answers 3001)."""
        with self.fake.lock:
            self.data.delete_meeting(uuid)

    def old_meeting_uuid(self, days_ago: int = 400) -> str:
        """A valid UUID of a meeting older than a year (participants report answers 12702)."""
        return self.data.meeting_uuid(self.data.anchor - dt.timedelta(days=days_ago), 0)

    def credentials(self) -> dict[str, Any]:
        return {
            "account_id": self.id,
            "account_index": self.index,
            "plan": self.plan,
            "users": self.spec.users,
            "apps": [a.credentials() for a in self.apps],
        }


def _date(v: dt.date | str) -> dt.date:
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(v)


class FakeZoom:
    """Ground truth and state of the fake. Thread-safe; share one between server and tests."""

    def __init__(self, config: FakeZoomConfig | None = None, *, clock: Clock | None = None
                 ) -> None:
        self.config = config or FakeZoomConfig()
        self.clock = clock or Clock(self.config.clock_offset, self.config.frozen_clock)
        self.lock = threading.RLock()
        self._secret = digest(self.config.seed, "fakezoom-secret", size=32)
        anchor = (dt.date.fromisoformat(self.config.anchor_date) if self.config.anchor_date
                  else self.clock.today())
        self.anchor = anchor
        self.accounts: dict[str, Account] = {}
        self.apps: dict[str, App] = {}
        for idx, spec in enumerate(self.config.accounts):
            acc = Account(self, idx, spec, anchor)
            self.accounts[acc.id] = acc
            for app in acc.apps:
                self.apps[app.client_id] = app
        self.tokens: dict[str, AccessToken] = {}
        self.limiter = RateLimiter(self)
        self._stats = Stats()
        self.fault_rng = random.Random(self.config.seed)
        self.revoke_counters: dict[str, int] = dict(self.config.faults.revoke_after)
        self.webhooks = WebhookSender(self)

    # ---------------------------------------------------------------- lookup
    def account(self, key: int | str = 0) -> Account:
        if isinstance(key, int):
            return list(self.accounts.values())[key]
        return self.accounts[key]

    def app(self, client_id: str) -> App:
        return self.apps[client_id]

    def credentials(self) -> list[dict[str, Any]]:
        with self.lock:
            return [a.credentials() for a in self.accounts.values()]

    # ---------------------------------------------------------------- clock
    def now(self) -> float:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.clock.advance(seconds)

    # ---------------------------------------------------------------- tokens
    def _refresh_token(self, app: App) -> str:
        app.refresh_seq += 1
        return _jwtish(
            {"aud": "https://oauth.zoom.us", "iss": f"zm:cid:{app.client_id}",
             "aid": app.account_id, "seq": app.refresh_seq, "tokenType": "refresh_token",
             "jti": digest(self._secret, app.client_id, app.refresh_seq).hex()},
            self._secret,
        )

    def issue_access_token(self, app: App) -> AccessToken:
        now = self.clock.now()
        lifetime = self.config.token_lifetime
        if app.kind == "s2s" and self.config.s2s_single_token:
            for t in self.tokens.values():
                if t.client_id == app.client_id:
                    t.revoked = True
        if len(self.tokens) > 5000:
            self.tokens = {k: t for k, t in self.tokens.items() if t.expires > now}
        raw = _jwtish(
            {"aud": "https://oauth.zoom.us", "iss": f"zm:cid:{app.client_id}",
             "aid": app.account_id, "nbf": int(now), "iat": int(now),
             "exp": int(now + lifetime), "tokenType": "access_token",
             "jti": secrets.token_hex(8)},
            self._secret,
        )
        tok = AccessToken(raw, app.client_id, app.account_id, frozenset(app.scopes), now,
                          now + lifetime)
        self.tokens[raw] = tok
        return tok

    def rotate_refresh_token(self, app: App) -> str:
        app.refresh_token = self._refresh_token(app)
        return app.refresh_token

    def revoke_tokens(self, app: App | str, refresh: bool = False) -> int:
        """Revoke every access token of an app (and its refresh token when refresh=True)."""
        client_id = app if isinstance(app, str) else app.client_id
        with self.lock:
            n = 0
            for t in self.tokens.values():
                if t.client_id == client_id and not t.revoked:
                    t.revoked = True
                    n += 1
            if refresh:
                self.apps[client_id].refresh_token = None
            return n

    def set_refresh_token(self, app: App | str, token: str) -> None:
        """Pretend an admin re-authorised the app with this refresh token."""
        client_id = app if isinstance(app, str) else app.client_id
        with self.lock:
            self.apps[client_id].refresh_token = token

    # ---------------------------------------------------------------- page tokens
    def page_token(self, query_key: str, offset: int) -> str:
        body = struct.pack(">II", offset, int(self.clock.now()))
        mac = hmac.new(self._secret, body + query_key.encode(), hashlib.sha256).digest()[:16]
        # Masked so tokens look opaque like Zoom's rather than leaking a readable offset.
        return _b64url(self._mask(body, mac) + mac)

    def _mask(self, body: bytes, mac: bytes) -> bytes:
        pad = hashlib.sha256(self._secret + mac).digest()
        return bytes(a ^ b for a, b in zip(body, pad, strict=False))

    def read_page_token(self, token: str, query_key: str) -> int | None:
        """Offset of a valid page token for this query, None when invalid or expired."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            return None
        if len(raw) != 24:
            return None
        mac = raw[8:]
        body = self._mask(raw[:8], mac)
        want = hmac.new(self._secret, body + query_key.encode(), hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, want):
            return None
        offset, issued = struct.unpack(">II", body)
        if self.clock.now() - issued > self.config.page_token_ttl:
            return None
        return int(offset)

    # ---------------------------------------------------------------- knobs
    def configure(self, **settings: Any) -> None:
        """Change top-level settings at run time (s2s_single_token, rate_scale, ...)."""
        with self.lock:
            for k, v in settings.items():
                if k in ("accounts", "faults", "seed") or not hasattr(self.config, k):
                    raise KeyError(k)
                setattr(self.config, k, v)
            if "frozen_clock" in settings:
                self.clock.freeze(bool(settings["frozen_clock"]))

    def set_faults(self, **faults: Any) -> FaultConfig:
        """Change fault settings; unspecified ones keep their value."""
        with self.lock:
            names = {f.name for f in dataclasses.fields(FaultConfig)}
            for k, v in faults.items():
                if k not in names:
                    raise KeyError(k)
                setattr(self.config.faults, k, v)
            if "revoke_after" in faults:
                self.revoke_counters = dict(faults["revoke_after"])
            return self.config.faults

    def clear_faults(self) -> None:
        with self.lock:
            self.config.faults = FaultConfig()
            self.revoke_counters = {}

    def reset_rate_limits(self) -> None:
        with self.lock:
            self.limiter.reset()

    # ---------------------------------------------------------------- stats
    @property
    def stats_counters(self) -> Stats:
        return self._stats

    def stats(self) -> dict[str, Any]:
        with self.lock:
            out = self._stats.as_dict()
            out["now"] = iso(self.clock.now())
            return out

    def reset_stats(self) -> None:
        with self.lock:
            self._stats.reset()

    # ---------------------------------------------------------------- delegates for tests
    def add_user(self, account: int | str = 0, **fields: Any) -> dict[str, Any]:
        return self.account(account).add_user(**fields)

    def rename_user(self, account: int | str, user: str, first_name: str, last_name: str
                    ) -> None:
        self.account(account).rename_user(user, first_name, last_name)

    def deactivate_user(self, account: int | str, user: str) -> None:
        self.account(account).deactivate_user(user)

    def delete_user(self, account: int | str, user: str) -> None:
        self.account(account).delete_user(user)

    def move_user_group(self, account: int | str, user: str, from_group: str | None,
                        to_group: str | None) -> None:
        self.account(account).move_user_group(user, from_group, to_group)


__all__ = ["Account", "App", "Clock", "FakeZoom", "Limited", "RateLimiter", "Stats", "field"]
