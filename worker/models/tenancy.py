"""Tenants, their API keys and their Zoom sources."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlmodel import Field, SQLModel

from worker.models.base import JsonField, TenantScoped, TimestampField, utcnow
from worker.models.enums import GrantType, SourceStatus, ZoomPlan


def tenant_fk() -> Column[Any]:
    return Column(
        Uuid, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False, index=True
    )


def source_fk() -> Column[Any]:
    return Column(Uuid, ForeignKey("source.id", ondelete="CASCADE"), nullable=False)


def tenant_column() -> Column[Any]:
    """``tenant_id`` of a table whose rows belong to a source: checked by
    ``source_of_tenant_fk`` together with ``source_id``, indexed for the tenant-wide reads."""
    return Column(Uuid, nullable=False, index=True)


def source_column() -> Column[Any]:
    return Column(Uuid, nullable=False)


def source_of_tenant_fk(table: str) -> ForeignKeyConstraint:
    """One check per row instead of one for the tenant and one for the source, and it refuses
    a row whose tenant is not its source's (one tenant never sees another's rows). A tenant's
    rows still go with it: tenant -> source -> rows cascade."""
    return ForeignKeyConstraint(
        ["tenant_id", "source_id"], ["source.tenant_id", "source.id"], ondelete="CASCADE",
        name=f"fk_{table}_source_tenant",
    )


class Tenant(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(sa_type=String(200), unique=True)
    created_at: datetime = TimestampField(nullable=False, default_factory=utcnow)


class ApiKey(SQLModel, TenantScoped, table=True):
    """An API key; only its SHA-256 is stored. Admin keys have no tenant."""

    __tablename__ = "api_key"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID | None = Field(  # type: ignore[assignment]
        default=None,
        sa_column=Column(Uuid, ForeignKey("tenant.id", ondelete="CASCADE"), index=True),
    )
    is_admin: bool = False
    name: str = Field(default="", sa_type=String(200))
    prefix: str = Field(sa_type=String(16))
    key_hash: str = Field(sa_type=String(64), unique=True)
    created_at: datetime = TimestampField(nullable=False, default_factory=utcnow)
    last_used_at: datetime | None = TimestampField()
    revoked_at: datetime | None = TimestampField()


DEFAULT_CORRELATION = {"email": True, "employee_unique_id": True}


class Source(SQLModel, TenantScoped, table=True):
    """One Zoom OAuth app of one tenant, with its credentials (encrypted) and schedules."""

    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_source_tenant_name"),
        # The key source_of_tenant_fk refers to.
        UniqueConstraint("tenant_id", "id", name="uq_source_tenant_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(sa_column=tenant_fk())
    name: str = Field(sa_type=String(200))
    description: str = Field(default="", sa_type=Text)
    owner: str = Field(default="", sa_type=String(320))
    governance_group: str | None = Field(default=None, sa_type=String(200))
    authoritative: bool = False

    grant_type: str = Field(default=GrantType.ACCOUNT_CREDENTIALS, sa_type=String(32))
    # Known up front for S2S apps; learnt from GET /users/me for refresh-token apps. Keys the
    # rate limiter, because Zoom counts limits per account over all its apps.
    zoom_account_id: str | None = Field(default=None, sa_type=Text, index=True)
    # Fernet(JSON{client_id, client_secret, account_id?, refresh_token?}). Never in clear.
    credentials_ciphertext: str = Field(default="", sa_type=Text)
    # Bumped on every write of the credentials (rotation included): compare-and-set guard.
    credentials_version: int = 0
    credentials_updated_at: datetime | None = TimestampField()

    status: str = Field(default=SourceStatus.NEW, sa_type=String(32))
    status_message: str = Field(default="", sa_type=Text)
    plan: str = Field(default=ZoomPlan.PRO, sa_type=String(16))
    # Share of the account's Zoom rate limits this source may use; None = settings default.
    rate_share: float | None = None

    aggregation_enabled: bool = True
    activity_enabled: bool = True
    # Split set-up: an activity-only source matches its events to this governance source's
    # accounts instead of aggregating its own.
    governance_source_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(Uuid, ForeignKey("source.id", ondelete="SET NULL"), nullable=True),
    )
    correlation_config: dict[str, Any] = JsonField(lambda: dict(DEFAULT_CORRELATION))

    # Cron expressions evaluated in ``timezone``; empty means the default spread by source id.
    aggregation_cron: str = Field(default="", sa_type=String(100))
    activity_cron: str = Field(default="", sa_type=String(100))
    timezone: str = Field(default="UTC", sa_type=String(64))
    next_aggregation_at: datetime | None = TimestampField(index=True)
    next_activity_at: datetime | None = TimestampField(index=True)

    last_test_at: datetime | None = TimestampField()
    last_test_ok_at: datetime | None = TimestampField()
    # When a signed webhook last arrived (updated at most every few seconds).
    last_webhook_at: datetime | None = TimestampField()
    # When the insights first had everything they need for the backfill window: the sign-in
    # history (days active, last sign-in) and the directory (worker.activity.readiness).
    insights_ready_at: datetime | None = TimestampField()
    created_at: datetime = TimestampField(nullable=False, default_factory=utcnow)
    updated_at: datetime = TimestampField(nullable=False, default_factory=utcnow)
