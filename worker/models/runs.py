"""Records of work done: connection tests, sync runs, and per-stream cursors."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, String, Text, Uuid
from sqlmodel import Field, SQLModel

from worker.models.base import JsonField, TenantScoped, TimestampField, utcnow
from worker.models.enums import RunStatus, RunTrigger, TestStatus
from worker.models.tenancy import source_fk, tenant_fk


class ConnectionTest(SQLModel, TenantScoped, table=True):
    __tablename__ = "connection_test"
    __table_args__ = (
        Index("ix_connection_test_source_created", "source_id", "created_at"),
        # The metrics scrape reads unfinished tests (NULL) and recently finished ones only.
        Index("ix_connection_test_finished_at", "finished_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(sa_column=tenant_fk())
    source_id: uuid.UUID = Field(sa_column=source_fk())
    status: str = Field(default=TestStatus.QUEUED, sa_type=String(16))
    created_at: datetime = TimestampField(nullable=False, default_factory=utcnow)
    started_at: datetime | None = TimestampField()
    finished_at: datetime | None = TimestampField()
    token_ms: int | None = None  # time to get a token (cache hit or OAuth round trip)
    call_ms: int | None = None  # time of the probe API call
    granted_scopes: list[str] = JsonField(list)
    missing_scopes: list[str] = JsonField(list)
    missing_optional_scopes: list[str] = JsonField(list)
    zoom_error_code: str | None = Field(default=None, sa_type=String(64))
    message: str = Field(default="", sa_type=Text)
    # Until when the test's holder (its broker message, then its worker) is presumed alive;
    # past it the scheduler's sweep sends the test again (worker/runs/sweep.py).
    lease_until: datetime | None = TimestampField()


class SyncRun(SQLModel, TenantScoped, table=True):
    """One unit of work: an aggregation, a correlation, or one activity chunk (or its plan)."""

    __tablename__ = "sync_run"
    __table_args__ = (
        Index("ix_sync_run_source_kind_created", "source_id", "kind", "created_at"),
        Index("ix_sync_run_status", "status"),
        # The metrics scrape reads runs that ended recently, not the whole history.
        Index("ix_sync_run_finished_at", "finished_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(sa_column=tenant_fk())
    source_id: uuid.UUID = Field(sa_column=source_fk())
    # A plan run (activity sync) is the parent of its chunk runs.
    parent_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(Uuid, ForeignKey("sync_run.id", ondelete="CASCADE"), index=True),
    )
    kind: str = Field(sa_type=String(16))
    stream: str | None = Field(default=None, sa_type=String(32))
    trigger: str = Field(default=RunTrigger.API, sa_type=String(16))
    status: str = Field(default=RunStatus.QUEUED, sa_type=String(16))
    window_start: datetime | None = TimestampField()
    window_end: datetime | None = TimestampField()
    pages: int = 0
    seen: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: int = 0  # items Zoom would not give (gone meetings) or duplicates of a run
    # Resumable position: e.g. {"stream": ..., "next_day": ...} for a deferred chunk.
    checkpoint: dict[str, Any] = JsonField(dict)
    details: dict[str, Any] = JsonField(dict)
    error_code: str | None = Field(default=None, sa_type=String(64))
    error_message: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = TimestampField(nullable=False, default_factory=utcnow)
    started_at: datetime | None = TimestampField()
    finished_at: datetime | None = TimestampField()
    # Postgres is the truth of who holds a run: a queued run's message, or a running run's
    # worker, is presumed alive until `lease_until` (renewed while working); past it the
    # scheduler's sweep sends the run again, whoever held it.
    lease_until: datetime | None = TimestampField()


class StreamCursor(SQLModel, TenantScoped, table=True):
    """How far a source's activity stream is synced (exclusive upper bound, UTC)."""

    __tablename__ = "stream_cursor"

    source_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid, ForeignKey("source.id", ondelete="CASCADE"), primary_key=True
        )
    )
    stream: str = Field(sa_type=String(32), primary_key=True)
    tenant_id: uuid.UUID = Field(sa_column=tenant_fk())
    watermark: datetime | None = TimestampField()
    updated_at: datetime = TimestampField(nullable=False, default_factory=utcnow)
