"""Tenant identities (from the tenant's identity system) and their links to Zoom accounts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, String, Text, UniqueConstraint, Uuid, text
from sqlmodel import Field, SQLModel

from worker.models.base import JsonField, TenantScoped, TimestampField, utcnow
from worker.models.tenancy import source_fk, tenant_fk


class Identity(SQLModel, TenantScoped, table=True):
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id", name="uq_identity_tenant_external_id"),
        Index("ix_identity_tenant_email", "tenant_id", "email_normalized"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(sa_column=tenant_fk())
    external_id: str = Field(sa_type=String(200))
    email: str = Field(default="", sa_type=String(320))
    # Lower-cased email: correlation is case-insensitive and must use an index.
    email_normalized: str = Field(default="", sa_type=String(320))
    display_name: str = Field(default="", sa_type=String(400))
    attributes: dict[str, Any] = JsonField(dict)
    # As the identity system says: "active", "inactive" or "terminated" (IDENTITY_STATUSES).
    # A leaver is inactive/terminated, or has a terminated_at that has passed.
    status: str = Field(
        default="active", sa_type=String(16),
        sa_column_kwargs={"server_default": text("'active'")},
    )
    terminated_at: datetime | None = TimestampField()
    created_at: datetime = TimestampField(nullable=False, default_factory=utcnow)
    updated_at: datetime = TimestampField(nullable=False, default_factory=utcnow)


IDENTITY_STATUSES = ("active", "inactive", "terminated")


class AccountCorrelation(SQLModel, TenantScoped, table=True):
    """Which identity a Zoom account belongs to (at most one per account)."""

    __tablename__ = "account_correlation"
    __table_args__ = (
        UniqueConstraint("source_id", "user_zoom_id", name="uq_account_correlation"),
        Index("ix_account_correlation_identity", "identity_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(sa_column=tenant_fk())
    source_id: uuid.UUID = Field(sa_column=source_fk())
    user_zoom_id: str = Field(sa_type=Text)
    identity_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("identity.id", ondelete="CASCADE"), nullable=False)
    )
    method: str = Field(sa_type=String(32))  # "email" | "employee_unique_id"
    correlated_at: datetime = TimestampField(nullable=False, default_factory=utcnow)
