"""Connection tests and sync runs as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.schemas.common import Schema, UtcDatetime


class ConnectionTestPublic(BaseModel):
    id: uuid.UUID
    source_id: uuid.UUID
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    token_ms: int | None
    call_ms: int | None
    granted_scopes: list[str]
    missing_scopes: list[str]
    missing_optional_scopes: list[str]
    zoom_error_code: str | None
    message: str
    links: dict[str, str]


class RunPublic(BaseModel):
    id: uuid.UUID
    source_id: uuid.UUID
    parent_id: uuid.UUID | None
    kind: str
    stream: str | None
    trigger: str
    status: str
    window_start: datetime | None
    window_end: datetime | None
    pages: int
    seen: int
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    skipped: int
    checkpoint: dict[str, Any]
    details: dict[str, Any]
    error_code: str | None
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: dict[str, str]


class RunDetail(RunPublic):
    children: list[RunPublic] = Field(
        default_factory=list, description="Chunk runs of an activity sync, oldest first"
    )


class ActivitySyncRequest(Schema):
    """Optional window for a backfill; omit both for an incremental sync from the watermark."""

    from_: UtcDatetime | None = Field(default=None, alias="from")
    to: UtcDatetime | None = None

    model_config = {"extra": "forbid", "populate_by_name": True}
