"""The access review as the API and the files show it: one row per Zoom account with its
findings, and a summary."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

Finding = Literal[
    "orphan", "leaver", "unused_licence", "idle_privileged", "never_used", "pending_invitation"
]
FINDINGS: tuple[Finding, ...] = (
    "orphan", "leaver", "unused_licence", "idle_privileged", "never_used", "pending_invitation"
)


class AccountReview(BaseModel):
    """One Zoom account (not deleted) as a reviewer certifies it."""

    account_id: int
    source_id: uuid.UUID
    zoom_id: str
    email: str
    display_name: str
    status: str = Field(description="Zoom status: active, inactive, pending")
    type: int | None = Field(description="Zoom user type: 1 Basic, 2 Licensed, 99 None")
    role_id: str | None
    role: str | None = Field(description="Role name, when the role is known")
    privileged: bool = Field(description="Owner/Admin role or a custom admin role")
    groups: list[str] = Field(description="Names of the account's Zoom groups")
    identity_id: uuid.UUID | None = Field(description="Linked identity, if any")
    identity_external_id: str | None
    identity_status: str | None
    identity_terminated_at: datetime | None
    created_at: datetime | None = Field(description="Zoom's created_at, else when first seen")
    last_sign_in_at: datetime | None = Field(
        description="Latest sign-in event or Zoom's last_login_time"
    )
    last_activity_at: datetime | None = Field(
        description="Latest sign-in/out, hosted meeting end, attendance or Zoom last login"
    )
    days_active: int = Field(description="Distinct UTC days with activity in the window")
    sign_ins: int = Field(description="Sign-ins in the window")
    sign_ins_vs_average: float | None = Field(
        description="sign_ins / the tenant's sign-ins per account (1.0 = average)"
    )
    findings: list[Finding]


class ReviewPage(BaseModel):
    generated_at: datetime
    days: int = Field(description="Idle threshold of the findings (days)")
    window_days: int = Field(description="Window of days_active and sign_ins (days)")
    tenant_average_sign_ins: float | None
    items: list[AccountReview]
    next_cursor: str | None = None


class DayCount(BaseModel):
    day: date
    accounts: int


class Bucket(BaseModel):
    label: str
    accounts: int


class ReviewSummary(BaseModel):
    generated_at: datetime
    days: int
    window_days: int
    accounts: int = Field(description="Zoom accounts not deleted")
    findings: dict[str, int] = Field(description="Accounts per finding")
    licences: int = Field(description="Licensed accounts (type 2)")
    unused_licences: int
    unused_licence_share: float | None = Field(description="unused_licences / licences")
    tenant_average_sign_ins: float | None
    days_active_distribution: list[Bucket]
    daily_active_accounts: list[DayCount]
