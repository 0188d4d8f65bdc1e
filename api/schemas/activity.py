"""Activity events, meetings, participants and insights."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ActivityEventPublic(BaseModel):
    id: int
    source_id: uuid.UUID
    email: str
    time: datetime
    type: str
    ip_address: str | None
    client_type: str | None
    version: str | None


class MeetingPublic(BaseModel):
    id: int
    source_id: uuid.UUID
    uuid: str
    meeting_id: str
    host_zoom_id: str
    host_email: str
    topic: str
    type: int | None
    start_time: datetime | None
    end_time: datetime | None
    duration: int | None = Field(description="Minutes")
    total_minutes: int | None
    participants_count: int | None
    participants_status: str
    links: dict[str, str]


class ParticipantPublic(BaseModel):
    id: int
    participant_id: str | None
    user_id: str | None
    name: str
    user_email: str
    join_time: datetime | None
    leave_time: datetime | None
    duration: int | None = Field(description="Seconds")
    status: str | None


class ActivityFigures(BaseModel):
    window_days: int = Field(description="Length of the window the counts cover (days)")
    last_activity_at: datetime | None = Field(
        description="Latest sign-in/out, meeting or summarised activity, all time"
    )
    zoom_last_login_at: datetime | None = Field(description="Zoom's own last_login_time")
    days_active: int = Field(description="Distinct UTC days with any activity in the window")
    sign_ins: int
    tenant_average_sign_ins: float | None = Field(
        description="Sign-ins per Zoom account in the tenant over the same window"
    )
    sign_ins_vs_average: float | None = Field(
        description="sign_ins / tenant_average_sign_ins (1.0 = average); null without data"
    )
    meetings_hosted: int
    meetings_attended: int
    meeting_minutes: int


class AccountRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    source_id: uuid.UUID
    zoom_id: str
    email: str
    status: str
    deleted_at: datetime | None


class AccountInsight(BaseModel):
    account: AccountRef
    identity_id: uuid.UUID | None
    activity: ActivityFigures


class IdentityInsight(BaseModel):
    identity_id: uuid.UUID
    external_id: str
    email: str
    accounts: list[AccountRef]
    activity: ActivityFigures


class InactiveAccount(BaseModel):
    account: AccountRef
    identity_id: uuid.UUID | None
    last_activity_at: datetime | None
    zoom_last_login_at: datetime | None
    zoom_created_at: datetime | None
