"""The webhook inbox: every verified Zoom event, stored raw before anything else happens.

The endpoint commits a row here and only then enqueues its processing by id, so an event Zoom
delivered is never lost to a busy worker or a broker outage: the beat tick's sweep sends what
is still pending. A redelivery of the same body (Zoom retries with the same payload) hits the
unique (source, body hash) and adds nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from worker.models.base import TenantScoped, TimestampField, utcnow
from worker.models.tenancy import source_fk, tenant_fk


class WebhookStatus:
    PENDING = "pending"
    PROCESSED = "processed"
    IGNORED = "ignored"  # an event type we do not use, or a stale one: kept, counted
    FAILED = "failed"  # gave up after the sweep's attempts; the daily pull repairs it


class WebhookEvent(SQLModel, TenantScoped, table=True):
    __tablename__ = "webhook_event"
    __table_args__ = (
        UniqueConstraint("source_id", "body_sha256", name="uq_webhook_event_body"),
        Index("ix_webhook_event_status_received", "status", "received_at"),
        Index("ix_webhook_event_source_received", "source_id", "received_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(sa_column=tenant_fk())
    source_id: uuid.UUID = Field(sa_column=source_fk())
    event: str = Field(default="", sa_type=String(100))
    # Zoom's event_ts (milliseconds since the epoch): orders an event against a pull.
    event_ts: int | None = Field(default=None, sa_type=BigInteger)
    body_sha256: str = Field(sa_type=String(64))
    body: str = Field(sa_type=Text)  # the raw JSON as Zoom sent it (signature verified)
    status: str = Field(default=WebhookStatus.PENDING, sa_type=String(16))
    attempts: int = 0
    outcome: str = Field(default="", sa_type=String(200))
    received_at: datetime = TimestampField(nullable=False, default_factory=utcnow)
    enqueued_at: datetime | None = TimestampField()
    processed_at: datetime | None = TimestampField()
