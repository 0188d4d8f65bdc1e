"""Configuration of the fake Zoom: plan, limits, clocks, faults and the accounts it hosts.

Everything is a plain dataclass so a benchmark can load it from JSON (`FakeZoomConfig.from_dict`)
and tests can tweak a field without knowing the rest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Plan = Literal["free", "pro", "business"]

CLASSIC_SCOPES: tuple[str, ...] = (
    "account:read:admin",
    "group:read:admin",
    "meeting:read:admin",
    "report:read:admin",
    "user:read:admin",
)


@dataclass
class FaultConfig:
    """Faults injected into `/v2` responses. Counters (`*_next`) are consumed one per response."""

    # Share of /v2 requests answered with a 5xx (drawn from a seeded RNG, so runs repeat).
    error_rate: float = 0.0
    # The next N /v2 requests answer 5xx regardless of error_rate (deterministic for tests).
    error_next: int = 0
    error_status: int = 500
    # Added to every /v2 response (asyncio sleep, so other requests keep flowing).
    latency_ms: int = 0
    # Truncated JSON bodies for list pages: a probability and/or "the next N pages".
    malformed_json_rate: float = 0.0
    malformed_json_next: int = 0
    # Only pages of endpoints whose route template contains this string (None: any list page).
    malformed_json_endpoint: str | None = None
    # Send the headers and half the body, then close the connection.
    drop_connection_rate: float = 0.0
    drop_connection_next: int = 0
    drop_connection_endpoint: str | None = None
    # Cloudflare-like HTML 403 for the participants report of this meeting UUID.
    html_403_meeting_uuid: str | None = None
    # Revoke every token of client_id after it has made N more /v2 requests ("revoked mid-run").
    revoke_after: dict[str, int] = field(default_factory=dict)


@dataclass
class AppSpec:
    """One Zoom app installed on an account. kind: "s2s" (account_credentials) or "general"."""

    kind: Literal["s2s", "general"] = "s2s"
    scopes: list[str] = field(default_factory=lambda: list(CLASSIC_SCOPES))
    # Index of the user who owns the app (`me`); 0 is the account owner.
    owner_index: int = 0
    name: str | None = None


@dataclass
class AccountSpec:
    """Shape of one account's generated data."""

    users: int = 60
    groups: int = 4
    # Custom roles on top of Zoom's built-in Owner (0), Admin (1) and Member (2).
    custom_roles: int = 2
    days: int = 30
    events_per_user_per_day: float = 1.5
    # Meetings started per licensed host per day.
    meetings_per_host_per_day: float = 0.3
    max_participants: int = 8
    operation_logs_per_day: float = 3.0
    # Share of users per status; the rest are active.
    inactive_share: float = 0.08
    pending_share: float = 0.07
    licensed_share: float = 0.6
    plan: Plan | None = None  # None: FakeZoomConfig.plan
    apps: list[AppSpec] = field(
        default_factory=lambda: [AppSpec(kind="s2s"), AppSpec(kind="general")]
    )


@dataclass
class FakeZoomConfig:
    seed: int = 0
    plan: Plan = "pro"
    accounts: list[AccountSpec] = field(default_factory=lambda: [AccountSpec()])
    rate_limits_enabled: bool = True
    # Multiplies the per-second (and per-minute) limits of the plan table: the account's real
    # limit below its plan (e.g. 0.1 = a tenth of Pro, as when other apps share the account).
    rate_scale: float = 1.0
    # Multiplies the daily limits (Free per-category, Pro/Business shared Heavy cap).
    daily_scale: float = 1.0
    token_lifetime: int = 3600
    page_token_ttl: int = 900
    # Zoom documents both: several valid S2S tokens at once, or a new one invalidating the old.
    s2s_single_token: bool = False
    omit_optional_headers: bool = False
    retry_after_as_date: bool = False
    # Clock: offset from real time at start; `frozen` stops it (advance() still moves it).
    clock_offset: float = 0.0
    frozen_clock: bool = False
    # Day the generated history ends (exclusive), ISO date; None: the fake clock's today.
    anchor_date: str | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FakeZoomConfig:
        raw = dict(raw)
        faults = FaultConfig(**raw.pop("faults", {}))
        accounts = []
        for acc in raw.pop("accounts", [{}]):
            acc = dict(acc)
            apps = [AppSpec(**a) for a in acc.pop("apps", [{"kind": "s2s"}, {"kind": "general"}])]
            accounts.append(AccountSpec(**acc, apps=apps))
        return cls(**raw, faults=faults, accounts=accounts)
