"""Seeded, lazily generated data of one fake Zoom account, with a mutation overlay.

Only small per-user indexes (status, type, role, groups, creation day: a few bytes a user) are
built up front, in one pass of a seeded RNG. Everything else (names, events, meetings,
participants, logs) is derived on demand from a hash of (seed, account, kind, index), so an
account with 100,000 users and a million sign-in events starts in well under a second and holds
almost nothing. Mutations live in an overlay over that base and bump `version`, which invalidates
the few derived lists that are cached.
"""

from __future__ import annotations

import base64
import calendar
import datetime as dt
import hashlib
import math
import random
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fakezoom.config import AccountSpec

UTC = dt.UTC
STATUSES = ("active", "inactive", "pending")
_ST_ACTIVE, _ST_INACTIVE, _ST_PENDING = 0, 1, 2
DAY = 86400

FIRST_NAMES = (
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim",
    "Margaret", "Linus", "Guido", "Anita", "Niklaus", "Leslie", "Shafi", "Whitfield", "Sophie",
    "John", "Hedy", "Katherine", "Dennis", "Bjarne", "Yukihiro", "Jean", "Mary", "Carl", "Ivan",
    "Lynn", "José", "Zoë",
)
LAST_NAMES = (
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson",
    "Perlman", "Berners-Lee", "Hamilton", "Torvalds", "van Rossum", "Borg", "Wirth", "Lamport",
    "Goldwasser", "Diffie", "Wilson", "McCarthy", "Lamarr", "Johnson", "Ritchie", "Stroustrup",
    "Matsumoto", "Sammet", "Keller", "Hewitt", "Sutherland", "Conway", "O'Neil", "Müller",
)
DEPTS = ("Engineering", "Sales", "Support", "Finance", "Legal", "Marketing", "HR", "")
TIMEZONES = ("America/New_York", "Europe/Berlin", "Asia/Tokyo", "America/Los_Angeles", "UTC")
CLIENT_TYPES = ("Browser", "Mac", "Win", "iOS", "Android", "Linux")
VERSIONS = ("5.17.11.34827", "6.0.2.39343", "6.1.1.41705", "6.2.5.46190", "-")
GROUP_NAMES = ("Engineering", "Sales", "Support", "Contractors", "EMEA", "APAC", "Leadership")
OPLOG_CATEGORIES = {
    "user": "User",
    "user_settings": "User Settings",
    "account": "Account",
    "role": "Role",
    "recording": "Recording",
}
# Role privileges as GET /roles/{roleId} lists them ("Resource:Read" / "Resource:Edit").
READ_PRIVILEGES = ("User:Read", "Group:Read", "Recording:Read", "Dashboard:Read")
USER_ADMIN_PRIVILEGES = ("User:Read", "User:Edit", "Group:Read", "Group:Edit")
ADMIN_PRIVILEGES = [
    "User:Read", "User:Edit", "Group:Read", "Group:Edit", "AccountSetting:Read",
    "AccountSetting:Edit", "Recording:Read", "Recording:Edit", "Dashboard:Read", "Role:Read",
]
OWNER_PRIVILEGES = [*ADMIN_PRIVILEGES, "Role:Edit", "AccountProfile:Read", "AccountProfile:Edit",
                    "BillingSubscription:Read", "BillingSubscription:Edit", "SubAccount:Read",
                    "SubAccount:Edit"]
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# Day numbers inside meeting UUIDs count from here, so two bytes cover until 2179.
_EPOCH = dt.date(2000, 1, 1)


def digest(*parts: object, size: int = 8) -> bytes:
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=size).digest()


def hnum(*parts: object) -> int:
    return int.from_bytes(digest(*parts), "big")


def iso(ts: float) -> str:
    # time.strftime of a struct: the same text as datetime's, at a third of the cost (every
    # served event has a time; the fake's CPU shares the bench machine with the worker).
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


_UNIX_DAY_ONE = dt.date(1970, 1, 1).toordinal()


def day_start(d: dt.date) -> int:
    """The Unix time of ``d``'s midnight, UTC (``calendar.timegm`` of it, without the tuple)."""
    return (d.toordinal() - _UNIX_DAY_ONE) * 86400


def _opaque(seed: int, account: int, kind: str, i: int, n: int = 22) -> str:
    raw = digest(seed, account, kind, i, size=24)
    return "".join(_ID_ALPHABET[b % 64] for b in raw)[:n]


def _b36(i: int) -> str:
    chars = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        i, r = divmod(i, 36)
        out = chars[r] + out
        if i == 0:
            return out


@dataclass(frozen=True)
class Meeting:
    day: dt.date
    j: int
    uuid: str
    id: int
    host: int
    start: int
    duration_min: int
    participants_count: int
    topic: str
    type: int


class AccountData:
    """The data of one account. Not thread-safe: the owner (`fakezoom.core`) holds a lock."""

    def __init__(
        self, seed: int, index: int, spec: AccountSpec, anchor: dt.date, account_id: str
    ) -> None:
        self.seed = seed
        self.index = index
        self.spec = spec
        self.anchor = anchor
        self.account_id = account_id
        self.n_base = max(1, spec.users)
        self.domain = f"acct{index}-{_opaque(seed, index, 'dom', 0, 6).lower()}.example.com"
        self.domain = self.domain.replace("_", "x").replace("-", "x", 1)
        self.first_day = anchor - dt.timedelta(days=spec.days)
        self.version = 0
        self._over: dict[int, dict[str, Any]] = {}
        self._email_index: dict[str, int] = {}
        self._deleted_meetings: set[str] = set()
        self._extra_oplogs: list[dict[str, Any]] = []
        self._next_index = self.n_base
        self._build_groups_and_roles()
        self._build_user_index()

    # ---------------------------------------------------------------- groups and roles
    def _build_groups_and_roles(self) -> None:
        s, a = self.seed, self.index
        self.group_ids = [_opaque(s, a, "group", g) for g in range(self.spec.groups)]
        self.group_names = [
            f"{GROUP_NAMES[g % len(GROUP_NAMES)]}{'' if g < len(GROUP_NAMES) else f' {g}'}"
            for g in range(self.spec.groups)
        ]
        self.role_ids = ["0", "1", "2"] + [
            _opaque(s, a, "role", r) for r in range(self.spec.custom_roles)
        ]
        self.role_names = ["Owner", "Admin", "Member"] + [
            f"Custom role {r + 1}" for r in range(self.spec.custom_roles)
        ]
        self.role_descriptions = [
            "Account owner has full privileges to access and manage a Zoom account.",
            "Admins have wide range privileges to access and manage a Zoom account.",
            "Members have access to basic Zoom video meeting functions but no account management.",
        ] + [f"Custom role {r + 1} for reviewers" for r in range(self.spec.custom_roles)]
        # GET /roles/{roleId} `privileges`, names from Zoom's privileges reference
        # (developers.zoom.us/docs/api/references/privileges). Custom roles alternate between
        # read-only (even) and user management (odd), under names that say neither.
        self.role_privileges = [OWNER_PRIVILEGES, ADMIN_PRIVILEGES, []] + [
            list(READ_PRIVILEGES if r % 2 == 0 else USER_ADMIN_PRIVILEGES)
            for r in range(self.spec.custom_roles)
        ]

    def _build_user_index(self) -> None:
        n, spec = self.n_base, self.spec
        rng = random.Random(hnum(self.seed, self.index, "users"))
        self.status = bytearray(n)
        self.utype = bytearray(n)
        self.role = array("H", bytes(2 * n))
        self.g1 = array("h", [-1]) * n
        self.g2 = array("h", [-1]) * n
        self.created_off = array("i", bytes(4 * n))  # days relative to anchor (negative)
        n_groups, n_custom = spec.groups, spec.custom_roles
        n_admins = max(1, n // 50)
        for i in range(n):
            r = rng.random()
            if i == 0 or r >= spec.inactive_share + spec.pending_share:
                st = _ST_ACTIVE
            elif r < spec.inactive_share:
                st = _ST_INACTIVE
            else:
                st = _ST_PENDING
            self.status[i] = st
            self.utype[i] = 2 if (i == 0 or rng.random() < spec.licensed_share) else 1
            if i == 0:
                self.role[i] = 0
            elif i <= n_admins:
                self.role[i] = 1
            elif n_custom and rng.random() < 0.1:
                self.role[i] = 3 + rng.randrange(n_custom)
            else:
                self.role[i] = 2
            if n_groups:
                if rng.random() < 0.85:
                    self.g1[i] = rng.randrange(n_groups)
                if n_groups > 1 and rng.random() < 0.2:
                    g = rng.randrange(n_groups)
                    if g != self.g1[i]:
                        self.g2[i] = g
            if st == _ST_PENDING or rng.random() < 0.15:
                self.created_off[i] = -rng.randrange(1, max(2, spec.days + 1))
            else:
                self.created_off[i] = -rng.randrange(spec.days + 1, spec.days + 1000)
        if self.spec.plan == "free":
            self.utype = bytearray(b"\x01") * n
        self.by_status = [
            array("i", (i for i in range(n) if self.status[i] == s)) for s in (0, 1, 2)
        ]
        # Users who can sign in (historical events) and licensed users who host meetings.
        self.signers = array("i", (i for i in range(n) if self.status[i] != _ST_PENDING))
        self.hosts = array(
            "i", (i for i in range(n) if self.status[i] != _ST_PENDING and self.utype[i] == 2)
        )

    # ---------------------------------------------------------------- users
    def user_id(self, i: int) -> str:
        # 16 opaque characters then the index, so a lookup by id needs no table.
        return _opaque(self.seed, self.index, "user", i, 16) + _b36(i).rjust(6, "0")

    def index_of(self, key: str) -> int | None:
        """User index for an id or email, or None when no such (live) user exists."""
        i: int | None = None
        if "@" in key:
            low = key.lower()
            if low in self._email_index:
                i = self._email_index[low]
            else:
                local, _, dom = low.partition("@")
                tail = local.rsplit(".", 1)[-1]
                if dom == self.domain and tail.isdigit():
                    i = int(tail)
                    if i < self.n_base and self._base_email(i) != low:
                        i = None
                    elif i in self._over and "email" in self._over[i]:
                        i = None  # the email changed, the old one no longer resolves
        elif len(key) == 22:
            try:
                cand = int(key[16:], 36)
            except ValueError:
                cand = -1
            if 0 <= cand < self._next_index and self.user_id(cand) == key:
                i = cand
        if i is None or i >= self._next_index or (i >= self.n_base and i not in self._over):
            return None
        if self._over.get(i, {}).get("deleted"):
            return None
        return i

    def _names(self, i: int) -> tuple[str, str]:
        h = hnum(self.seed, self.index, "name", i)
        return FIRST_NAMES[h % len(FIRST_NAMES)], LAST_NAMES[(h >> 8) % len(LAST_NAMES)]

    # Each served sign-in carries its user's address: built once per user, not per event.
    @lru_cache(maxsize=1 << 17)  # noqa: B019
    def _base_email(self, i: int) -> str:
        first, last = self._names(i)
        local = "".join(c for c in f"{first}.{last}".lower() if c.isascii() and c not in " '")
        return f"{local}.{i}@{self.domain}"

    def _base(self, i: int) -> dict[str, Any]:
        h = hnum(self.seed, self.index, "user-detail", i)
        first, last = self._names(i)
        st = STATUSES[self.status[i]]
        created = day_start(self.anchor) + self.created_off[i] * DAY + (h % DAY)
        groups = [self.group_ids[g] for g in (self.g1[i], self.g2[i]) if g >= 0]
        rec: dict[str, Any] = {
            "id": self.user_id(i),
            "first_name": first,
            "last_name": last,
            "display_name": f"{first} {last}",
            "email": self._base_email(i),
            "type": self.utype[i],
            "pmi": 1000000000 + hnum(self.seed, self.index, "pmi", i) % 8999999999,
            "timezone": TIMEZONES[(h >> 16) % len(TIMEZONES)],
            "verified": 1 if st != "pending" else 0,
            "dept": DEPTS[(h >> 20) % len(DEPTS)],
            "created_at": iso(created),
            "language": "en-US",
            "status": st,
            "role_id": self.role_ids[self.role[i]],
            "employee_unique_id": f"E{self.index:02d}{i:07d}",
            "group_ids": groups,
            "_created_ts": created,
        }
        if st != "pending":
            login = day_start(self.anchor) - 1 - (h >> 24) % (max(1, self.spec.days) * DAY)
            rec["last_login_time"] = iso(max(created, login))
            rec["last_client_version"] = VERSIONS[(h >> 32) % 4] + " (mac)"
        return rec

    def record(self, i: int) -> dict[str, Any]:
        """Full internal record of user i (base + overlay), including private `_` keys."""
        over = self._over.get(i)
        if i < self.n_base:
            rec = self._base(i)
            if over:
                rec.update(over)
        else:
            assert over is not None
            rec = dict(over)
        if "first_name" in (over or {}) or "last_name" in (over or {}):
            rec["display_name"] = f"{rec['first_name']} {rec['last_name']}".strip()
        return rec

    def status_of(self, i: int) -> str:
        over = self._over.get(i, {})
        return over.get("status") or STATUSES[self.status[i]]

    def live(self, i: int) -> bool:
        return not self._over.get(i, {}).get("deleted") and (i < self.n_base or i in self._over)

    @lru_cache(maxsize=64)  # noqa: B019 - keyed by version, a handful of entries
    def _status_list(self, status: int, version: int) -> array[int]:  # noqa: ARG002 - the lru_cache key: a new version drops the cached answer
        base = self.by_status[status]
        if not self._over:
            return base
        name = STATUSES[status]
        out = array("i", (i for i in base if i not in self._over or self._keeps(i, name)))
        extra = sorted(
            i for i, o in self._over.items()
            if not o.get("deleted") and self.status_of(i) == name
            and (i >= self.n_base or self.status[i] != status)
        )
        merged = sorted([*out, *extra])
        return array("i", merged)

    def _keeps(self, i: int, name: str) -> bool:
        return self.live(i) and self.status_of(i) == name

    def users_with_status(self, status: str) -> array[int]:
        return self._status_list(STATUSES.index(status), self.version)

    def all_user_indexes(self) -> list[int]:
        return sorted(
            i for s in STATUSES for i in self.users_with_status(s)
        )

    def groups_of(self, i: int) -> list[str]:
        return list(self.record(i)["group_ids"]) if i in self._over else [
            self.group_ids[g] for g in (self.g1[i], self.g2[i]) if g >= 0
        ]

    def role_of(self, i: int) -> str:
        over = self._over.get(i, {})
        return over.get("role_id") or self.role_ids[self.role[i]]

    @lru_cache(maxsize=8)  # noqa: B019 - keyed by version
    def _memberships(self, version: int) -> tuple[dict[str, array[int]], dict[str, array[int]]]:  # noqa: ARG002 - the lru_cache key: a new version drops the cached answer
        groups: dict[str, array[int]] = {g: array("i") for g in self.group_ids}
        roles: dict[str, array[int]] = {r: array("i") for r in self.role_ids}
        for i in self.all_user_indexes():
            for g in self.groups_of(i):
                if g in groups:
                    groups[g].append(i)
            roles.setdefault(self.role_of(i), array("i")).append(i)
        return groups, roles

    def group_members(self, group_id: str) -> array[int]:
        return self._memberships(self.version)[0][group_id]

    def role_members(self, role_id: str) -> array[int]:
        return self._memberships(self.version)[1][role_id]

    # ---------------------------------------------------------------- mutations
    def _touch(self) -> None:
        self.version += 1

    def _ensure(self, i: int) -> dict[str, Any]:
        over = self._over.setdefault(i, {})
        if i < self.n_base and "group_ids" not in over:
            over["group_ids"] = [self.group_ids[g] for g in (self.g1[i], self.g2[i]) if g >= 0]
        return over

    def add_user(self, now: float, **fields: Any) -> int:
        i = self._next_index
        self._next_index += 1
        first = fields.pop("first_name", "New")
        last = fields.pop("last_name", f"User{i}")
        email = fields.pop("email", f"new.user.{i}@{self.domain}").lower()
        status = fields.pop("status", "active")
        rec: dict[str, Any] = {
            "id": self.user_id(i),
            "first_name": first,
            "last_name": last,
            "display_name": f"{first} {last}",
            "email": email,
            "type": fields.pop("type", 1),
            "pmi": 1000000000 + hnum(self.seed, self.index, "pmi", i) % 8999999999,
            "timezone": "UTC",
            "verified": 1 if status != "pending" else 0,
            "dept": fields.pop("dept", ""),
            "created_at": iso(now),
            "language": "en-US",
            "status": status,
            "role_id": fields.pop("role_id", "2"),
            "employee_unique_id": fields.pop("employee_unique_id", f"N{self.index:02d}{i:07d}"),
            "group_ids": list(fields.pop("group_ids", [])),
            "_created_ts": int(now),
        }
        rec.update(fields)
        self._over[i] = rec
        self._email_index[email] = i
        self._log(now, "User", "Add", f"Add user {email}")
        self._touch()
        return i

    def update_user(self, i: int, now: float, **fields: Any) -> None:
        over = self._ensure(i)
        if "email" in fields:
            old = self.record(i)["email"].lower()
            self._email_index.pop(old, None)
            self._email_index[fields["email"].lower()] = i
        over.update(fields)
        detail = ", ".join(f"{k}: {v}" for k, v in fields.items())
        self._log(now, "User", "Update", f"Update user {self.record(i)['email']} ({detail})")
        self._touch()

    def delete_user(self, i: int, now: float) -> None:
        email = self.record(i)["email"]
        self._ensure(i)["deleted"] = True
        self._email_index.pop(email.lower(), None)
        self._log(now, "User", "Delete", f"Delete user {email}")
        self._touch()

    def move_user_group(self, i: int, from_group: str | None, to_group: str | None,
                        now: float) -> None:
        over = self._ensure(i)
        groups = [g for g in over["group_ids"] if g != from_group]
        if to_group and to_group not in groups:
            groups.append(to_group)
        over["group_ids"] = groups
        self._log(now, "User", "Update", f"Move {self.record(i)['email']} to group {to_group}")
        self._touch()

    def delete_meeting(self, uuid: str) -> None:
        self._deleted_meetings.add(uuid)

    def _log(self, now: float, category: str, action: str, detail: str) -> None:
        self._extra_oplogs.append({
            "time": iso(now),
            "operator": self._base_email(0),
            "category_type": category,
            "action": action,
            "operation_detail": detail,
            "_ts": int(now),
        })

    # ---------------------------------------------------------------- days
    def data_days(self, start: dt.date, end: dt.date) -> Iterator[dt.date]:
        """Days of generated history within [start, end], oldest first."""
        d = max(start, self.first_day)
        last = min(end, self.anchor - dt.timedelta(days=1))
        while d <= last:
            yield d
            d += dt.timedelta(days=1)

    def _jitter(self, kind: str, d: dt.date) -> float:
        return 0.8 + (hnum(self.seed, self.index, kind, d.toordinal()) % 4001) / 10000

    # ---------------------------------------------------------------- sign-in events
    @lru_cache(maxsize=4096)  # noqa: B019 - a few bytes per day
    def events_on(self, d: dt.date) -> int:
        if not (self.first_day <= d < self.anchor) or not len(self.signers):
            return 0
        mean = self.spec.events_per_user_per_day * len(self.signers)
        return round(mean * self._jitter("ev-count", d))

    def event(self, d: dt.date, j: int) -> dict[str, Any]:
        n = self.events_on(d)
        h = hnum(self.seed, self.index, "ev", d.toordinal(), j)
        slot = max(1, DAY // max(1, n))
        ts = day_start(d) + min(DAY - 1, (j * DAY) // max(1, n) + (h >> 40) % slot)
        i = self.signers[h % len(self.signers)]
        return {
            "email": self._base_email(i),
            "time": iso(ts),
            "type": "Sign in" if (h >> 8) % 2 == 0 else "Sign out",
            "ip_address": f"10.{(h >> 12) % 256}.{(h >> 20) % 256}.{(h >> 28) % 254 + 1}",
            "client_type": CLIENT_TYPES[(h >> 36) % len(CLIENT_TYPES)],
            "version": VERSIONS[(h >> 44) % len(VERSIONS)],
        }

    def count_events(self, start: dt.date, end: dt.date) -> int:
        return sum(self.events_on(d) for d in self.data_days(start, end))

    def events_slice(self, start: dt.date, end: dt.date, offset: int, limit: int
                     ) -> list[dict[str, Any]]:
        """Events in [start, end], newest first (Zoom's order), items offset..offset+limit."""
        out: list[dict[str, Any]] = []
        days = list(self.data_days(start, end))[::-1]
        for d in days:
            n = self.events_on(d)
            if offset >= n:
                offset -= n
                continue
            # Newest first: within a day the last generated event is the latest.
            for j in range(n - 1 - offset, -1, -1):
                out.append(self.event(d, j))
                if len(out) >= limit:
                    return out
            offset = 0
        return out

    # ---------------------------------------------------------------- meetings
    @lru_cache(maxsize=4096)  # noqa: B019
    def meetings_on(self, d: dt.date) -> int:
        if not (self.first_day <= d < self.anchor) or not len(self.hosts):
            return 0
        mean = self.spec.meetings_per_host_per_day * len(self.hosts)
        return round(mean * self._jitter("mt-count", d))

    def meeting_uuid(self, d: dt.date, j: int) -> str:
        """Reversible UUID: 3 free bytes (shaped to exercise '/' and '//') + masked day and j."""
        h = hnum(self.seed, self.index, "mt-uuid", d.toordinal(), j)
        kind = h % 16
        head = "".join(_B64[(h >> (6 * k + 8)) % 64] for k in range(4))
        if kind == 0:
            head = "/" + head[1:]
        elif kind == 1:
            head = head[0] + "//" + head[3]
        day_no = (d - _EPOCH).days
        plain = day_no.to_bytes(2, "big") + j.to_bytes(3, "big")
        mac = digest(self.seed, self.index, "mt-mac", day_no, j, size=8)
        key = digest(self.seed, self.index, "mt-key", size=5)
        masked = bytes(a ^ b for a, b in zip(plain, key, strict=True))
        raw = base64.b64decode(head) + masked + mac
        return base64.b64encode(raw).decode()

    def meeting_number(self, d: dt.date, j: int) -> int:
        # A permutation of (day, j) so numbers look unordered yet decode without a table.
        v = j * 20_000 + (d - _EPOCH).days
        return 80_000_000_000 + v * 2_654_435_761 % 10_000_000_000

    def decode_meeting(self, key: str) -> tuple[dt.date, int] | None:
        """(day, j) for a meeting UUID or number of this account, whether or not it is kept."""
        if key.isdigit():
            n = int(key) - 80_000_000_000
            if not 0 <= n < 10_000_000_000:
                return None
            v = n * pow(2_654_435_761, -1, 10_000_000_000) % 10_000_000_000
            j, day_no = divmod(v, 20_000)
        else:
            try:
                raw = base64.b64decode(key, validate=True)
            except ValueError:
                return None
            if len(raw) != 16:
                return None
            key5 = digest(self.seed, self.index, "mt-key", size=5)
            plain = bytes(a ^ b for a, b in zip(raw[3:8], key5, strict=True))
            day_no, j = int.from_bytes(plain[:2], "big"), int.from_bytes(plain[2:], "big")
            if raw[8:] != digest(self.seed, self.index, "mt-mac", day_no, j, size=8):
                return None
        try:
            d = _EPOCH + dt.timedelta(days=day_no)
        except OverflowError:
            return None
        return d, j

    def meeting(self, d: dt.date, j: int) -> Meeting:
        n = self.meetings_on(d)
        h = hnum(self.seed, self.index, "mt", d.toordinal(), j)
        slot = max(1, DAY // max(1, n))
        start = day_start(d) + min(DAY - 7200, (j * DAY) // max(1, n) + (h >> 40) % slot)
        host = self.hosts[h % len(self.hosts)] if len(self.hosts) else 0
        first, _ = self._names(host)
        maxp = max(2, self.spec.max_participants)
        return Meeting(
            day=d, j=j, uuid=self.meeting_uuid(d, j), id=self.meeting_number(d, j), host=host,
            start=start, duration_min=5 + (h >> 12) % 115,
            participants_count=2 + (h >> 20) % (maxp - 1),
            topic=f"{first}'s {('Standup', 'Review', '1:1', 'Planning', 'Demo')[(h >> 28) % 5]}",
            type=(1, 2, 8)[(h >> 32) % 3],
        )

    def find_meeting(self, key: str) -> Meeting | None:
        dj = self.decode_meeting(key)
        if dj is None:
            return None
        d, j = dj
        # The data never goes back more than its days, but a UUID older than a year must be
        # recognised (12702) rather than reported as missing, so accept any decodable day.
        if d >= self.anchor or (self.first_day <= d and j >= self.meetings_on(d)):
            return None
        if d < self.first_day and (j >= 1000 or (self.anchor - d).days <= 365):
            return None
        m = self.meeting(d, j)
        if m.uuid in self._deleted_meetings:
            return None
        return m

    @lru_cache(maxsize=256)  # noqa: B019
    def _hosted_on(self, d: dt.date) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for j in range(self.meetings_on(d)):
            h = hnum(self.seed, self.index, "mt", d.toordinal(), j)
            out.setdefault(self.hosts[h % len(self.hosts)], []).append(j)
        return out

    @lru_cache(maxsize=64)  # noqa: B019
    def _joined_on(self, d: dt.date) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for j in range(self.meetings_on(d)):
            for p in self.participants(self.meeting(d, j)):
                if p["_index"] is not None:
                    out.setdefault(p["_index"], []).append(j)
        return out

    def user_meetings(self, i: int, start: dt.date, end: dt.date, joined: bool) -> list[Meeting]:
        out: list[Meeting] = []
        for d in self.data_days(start, end):
            js = (self._joined_on if joined else self._hosted_on)(d).get(i, [])
            for j in sorted(set(js)):
                m = self.meeting(d, j)
                if m.uuid not in self._deleted_meetings:
                    out.append(m)
        return out

    def participants(self, m: Meeting) -> list[dict[str, Any]]:
        out = []
        end = m.start + m.duration_min * 60
        for k in range(m.participants_count):
            h = hnum(self.seed, self.index, "pt", m.uuid, k)
            if k == 0:
                idx: int | None = m.host
            elif h % 10 < 8 and len(self.signers):
                idx = self.signers[(h >> 4) % len(self.signers)]
            else:
                idx = None
            join = m.start + (0 if k == 0 else (h >> 16) % max(1, m.duration_min * 30))
            leave = end if k == 0 else max(join + 60, end - (h >> 28) % 600)
            leave = min(leave, end)
            if idx is not None:
                first, last = self._names(idx)
                name, email, uid = f"{first} {last}", self._base_email(idx), self.user_id(idx)
            else:
                name, email, uid = f"Guest {(h >> 8) % 1000}", "", ""
            out.append({
                "id": uid,
                "user_id": str(16778240 + k * 1024 + (h >> 40) % 1024),
                "name": name,
                "user_email": email,
                "join_time": iso(join),
                "leave_time": iso(leave),
                "duration": max(0, leave - join),
                "failover": False,
                "status": "in_meeting",
                "customer_key": "",
                "_index": idx,
            })
        return out

    def meeting_report(self, m: Meeting) -> dict[str, Any]:
        host = self.record(m.host) if self.live(m.host) else self._base(m.host)
        end = m.start + m.duration_min * 60
        return {
            "uuid": m.uuid,
            "id": m.id,
            "type": m.type,
            "topic": m.topic,
            "user_name": f"{host['first_name']} {host['last_name']}",
            "user_email": host["email"],
            "start_time": iso(m.start),
            "end_time": iso(end),
            "duration": m.duration_min,
            "total_minutes": m.duration_min * m.participants_count,
            "participants_count": m.participants_count,
            "participants_count_my_account": m.participants_count,
            "source": "Zoom",
            "has_screen_share": m.j % 2 == 0,
            "has_recording": m.j % 5 == 0,
            "has_chat": m.j % 3 == 0,
            "meeting_encryption_status": 1,
            "custom_keys": [],
        }

    # ---------------------------------------------------------------- host usage and daily
    @lru_cache(maxsize=16)  # noqa: B019
    def host_usage(self, start: dt.date, end: dt.date) -> dict[int, tuple[int, int, int]]:
        """user index -> (meetings, participants, meeting minutes) hosted in [start, end]."""
        out: dict[int, list[int]] = {}
        for d in self.data_days(start, end):
            for j in range(self.meetings_on(d)):
                m = self.meeting(d, j)
                if m.uuid in self._deleted_meetings:
                    continue
                acc = out.setdefault(m.host, [0, 0, 0])
                acc[0] += 1
                acc[1] += m.participants_count
                acc[2] += m.duration_min
        return {i: (a[0], a[1], a[2]) for i, a in out.items()}

    @lru_cache(maxsize=8)  # noqa: B019
    def _new_users_by_day(self, version: int) -> dict[dt.date, int]:  # noqa: ARG002 - the lru_cache key: a new version drops the cached answer
        out: dict[dt.date, int] = {}
        base_day = self.anchor.toordinal()
        for i in range(self.n_base):
            if self.live(i):
                d = dt.date.fromordinal(base_day + self.created_off[i])
                out[d] = out.get(d, 0) + 1
        for i, o in self._over.items():
            if i >= self.n_base and not o.get("deleted"):
                d = dt.datetime.fromtimestamp(o["_created_ts"], UTC).date()
                out[d] = out.get(d, 0) + 1
        return out

    def daily(self, year: int, month: int, today: dt.date) -> list[dict[str, Any]]:
        new_users = self._new_users_by_day(self.version)
        out = []
        for day in range(1, calendar.monthrange(year, month)[1] + 1):
            d = dt.date(year, month, day)
            if d > today:
                break
            meetings = participants = minutes = 0
            for j in range(self.meetings_on(d)):
                m = self.meeting(d, j)
                meetings += 1
                participants += m.participants_count
                minutes += m.duration_min
            out.append({
                "date": d.isoformat(),
                "new_users": new_users.get(d, 0),
                "meetings": meetings,
                "participants": participants,
                "meeting_minutes": minutes,
            })
        return out

    # ---------------------------------------------------------------- operation logs
    def operation_logs(self, start: dt.date, end: dt.date, category: str | None
                       ) -> list[dict[str, Any]]:
        """Operation log entries in [start, end], newest first."""
        want = OPLOG_CATEGORIES.get(category or "all")
        admins = [0, *range(1, 1 + max(1, self.n_base // 50))][: self.n_base]
        items: list[dict[str, Any]] = []
        cats = list(OPLOG_CATEGORIES.values())
        for d in self.data_days(start, end):
            n = round(self.spec.operation_logs_per_day * self._jitter("op", d))
            for k in range(n):
                h = hnum(self.seed, self.index, "op", d.toordinal(), k)
                ts = day_start(d) + (k * DAY) // max(1, n) + (h >> 40) % max(1, DAY // max(1, n))
                cat = cats[h % len(cats)]
                target = self._base_email(self.signers[(h >> 8) % len(self.signers)]) if len(
                    self.signers) else ""
                action = ("Add", "Update", "Delete")[(h >> 16) % 3]
                items.append({
                    "time": iso(ts),
                    "operator": self._base_email(admins[(h >> 24) % len(admins)]),
                    "category_type": cat,
                    "action": action,
                    "operation_detail": f"{action} {cat.lower()} {target}".strip(),
                    "_ts": ts,
                })
        lo, hi = day_start(start), day_start(end) + DAY
        items += [x for x in self._extra_oplogs if lo <= x["_ts"] < hi]
        if want:
            items = [x for x in items if x["category_type"] == want]
        items.sort(key=lambda x: x["_ts"], reverse=True)
        return items


def month_span(start: dt.date, end: dt.date) -> bool:
    """True when [start, end] is longer than Zoom's one-month report window."""
    y, m = start.year + (start.month // 12), start.month % 12 + 1
    try:
        limit = start.replace(year=y, month=m)
    except ValueError:
        limit = dt.date(y, m, calendar.monthrange(y, m)[1])
    return end > limit


def ceil_div(a: int, b: int) -> int:
    return math.ceil(a / b) if b else 0


__all__ = ["STATUSES", "AccountData", "Meeting", "iso", "month_span"]
