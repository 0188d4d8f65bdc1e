"""The access review's API schemas: the rows and summary (defined with the review, in
worker.reports.schemas) and the signed links to the report page."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.common import Schema
from worker.reports.schemas import (
    FINDINGS,
    AccountReview,
    Bucket,
    DayCount,
    Finding,
    ReviewPage,
    ReviewSummary,
)

__all__ = ["FINDINGS", "AccountReview", "Bucket", "DayCount", "Finding", "ReportLink",
           "ReportLinkIn", "ReviewPage", "ReviewSummary"]


class ReportLinkIn(Schema):
    days: int = Field(default=30, ge=1, le=3650, description="Idle threshold (days)")
    source_id: uuid.UUID | None = Field(default=None, description="Only this source's accounts")
    expires_in: int = Field(default=900, ge=60, le=86400,
                            description="Seconds the link works (1 minute to 1 day)")


class ReportLink(BaseModel):
    href: str = Field(description="Opens the report page without an API key until it expires")
    expires_at: datetime
