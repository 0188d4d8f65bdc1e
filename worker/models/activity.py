"""Activity pulled from Zoom's reports, each row keyed so that re-ingesting a page is a no-op."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Date, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from worker.models.base import BigIntPK, JsonField, TenantScoped, TimestampField, utcnow
from worker.models.tenancy import (
    source_column,
    source_fk,
    source_of_tenant_fk,
    tenant_column,
    tenant_fk,
)


class ActivityEvent(SQLModel, TenantScoped, table=True):
    """A sign-in or sign-out (/report/activities). Zoom gives no id: the key is a hash of
    (source, email, time, type, ip_address, client_type, version)."""

    __tablename__ = "activity_event"
    __table_args__ = (
        UniqueConstraint("source_id", "event_key", name="uq_activity_event_key"),
        Index("ix_activity_event_source_time", "source_id", "time"),
        Index("ix_activity_event_source_email_time", "source_id", "email", "time"),
        source_of_tenant_fk("activity_event"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: UUID = Field(sa_column=tenant_column())
    source_id: UUID = Field(sa_column=source_column())
    event_key: str = Field(sa_type=String(64))
    email: str = Field(default="", sa_type=Text)  # lower-cased
    time: datetime = TimestampField(nullable=False)
    type: str = Field(default="", sa_type=Text)
    ip_address: str | None = Field(default=None, sa_type=Text)
    client_type: str | None = Field(default=None, sa_type=Text)
    version: str | None = Field(default=None, sa_type=Text)


class Meeting(SQLModel, TenantScoped, table=True):
    __table_args__ = (
        UniqueConstraint("source_id", "uuid", name="uq_meeting_source_uuid"),
        Index("ix_meeting_source_start", "source_id", "start_time"),
        Index("ix_meeting_source_host", "source_id", "host_zoom_id"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: UUID = Field(sa_column=tenant_fk())
    source_id: UUID = Field(sa_column=source_fk())
    uuid: str = Field(sa_type=Text)
    meeting_id: str = Field(default="", sa_type=Text)
    host_zoom_id: str = Field(default="", sa_type=Text)
    host_email: str = Field(default="", sa_type=Text)
    topic: str = Field(default="", sa_type=Text)
    type: int | None = None
    start_time: datetime | None = TimestampField()
    end_time: datetime | None = TimestampField()
    duration: int | None = None  # minutes
    total_minutes: int | None = None
    participants_count: int | None = None
    # "fetched" | "gone" (3001/12702/HTML 403: counted, not fatal) | "pending"
    participants_status: str = Field(default="pending", sa_type=String(16))


class MeetingParticipant(SQLModel, TenantScoped, table=True):
    """Key: (source, meeting uuid, participant id or user id, join time), hashed."""

    __tablename__ = "meeting_participant"
    __table_args__ = (
        UniqueConstraint("source_id", "participant_key", name="uq_meeting_participant_key"),
        Index("ix_meeting_participant_meeting", "source_id", "meeting_uuid"),
        Index("ix_meeting_participant_email", "source_id", "user_email"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: UUID = Field(sa_column=tenant_fk())
    source_id: UUID = Field(sa_column=source_fk())
    participant_key: str = Field(sa_type=String(64))
    meeting_uuid: str = Field(sa_type=Text)
    participant_id: str | None = Field(default=None, sa_type=Text)
    user_id: str | None = Field(default=None, sa_type=Text)
    name: str = Field(default="", sa_type=Text)
    user_email: str = Field(default="", sa_type=Text)
    join_time: datetime | None = TimestampField()
    leave_time: datetime | None = TimestampField()
    duration: int | None = None  # seconds
    status: str | None = Field(default=None, sa_type=Text)


class HostUsage(SQLModel, TenantScoped, table=True):
    """/report/users: meetings, participants and minutes a user hosted in a period."""

    __tablename__ = "host_usage"
    __table_args__ = (
        UniqueConstraint("source_id", "user_zoom_id", "period_start", name="uq_host_usage"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: UUID = Field(sa_column=tenant_fk())
    source_id: UUID = Field(sa_column=source_fk())
    user_zoom_id: str = Field(sa_type=Text)
    email: str = Field(default="", sa_type=Text)
    period_start: date = Field(sa_type=Date)
    period_end: date = Field(sa_type=Date)
    meetings: int = 0
    participants: int = 0
    meeting_minutes: int = 0
    last_client_version: str | None = Field(default=None, sa_type=Text)


class DailyUsage(SQLModel, TenantScoped, table=True):
    """/report/daily: account-wide figures per day."""

    __tablename__ = "daily_usage"
    __table_args__ = (UniqueConstraint("source_id", "day", name="uq_daily_usage"),)

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: UUID = Field(sa_column=tenant_fk())
    source_id: UUID = Field(sa_column=source_fk())
    day: date = Field(sa_type=Date)
    new_users: int = 0
    meetings: int = 0
    participants: int = 0
    meeting_minutes: int = 0


class OperationLog(SQLModel, TenantScoped, table=True):
    """/report/operationlogs: admin actions in the Zoom account."""

    __tablename__ = "operation_log"
    __table_args__ = (
        UniqueConstraint("source_id", "log_key", name="uq_operation_log_key"),
        Index("ix_operation_log_source_time", "source_id", "time"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: UUID = Field(sa_column=tenant_fk())
    source_id: UUID = Field(sa_column=source_fk())
    log_key: str = Field(sa_type=String(64))
    time: datetime = TimestampField(nullable=False)
    operator: str = Field(default="", sa_type=Text)
    category_type: str = Field(default="", sa_type=Text)
    action: str = Field(default="", sa_type=Text)
    operation_detail: str = Field(default="", sa_type=Text)


class UserDailySummary(SQLModel, TenantScoped, table=True):
    """Per Zoom user and day: what Activity Insights shows. Recomputed for the days a chunk
    touched, from the rows above, so it is always derivable and idempotent."""

    __tablename__ = "user_daily_summary"
    __table_args__ = (
        UniqueConstraint("source_id", "email", "day", name="uq_user_daily_summary"),
        Index("ix_user_daily_summary_source_day", "source_id", "day"),
        source_of_tenant_fk("user_daily_summary"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: UUID = Field(sa_column=tenant_column())
    source_id: UUID = Field(sa_column=source_column())
    email: str = Field(sa_type=Text)  # lower-cased
    day: date = Field(sa_type=Date)
    sign_ins: int = 0
    meetings_hosted: int = 0
    meetings_attended: int = 0
    meeting_minutes: int = 0
    last_activity_at: datetime | None = TimestampField()
    updated_at: datetime = TimestampField(nullable=False, default_factory=utcnow)
    details: dict[str, Any] = JsonField(dict)
