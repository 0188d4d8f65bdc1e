"""Tenants and their API keys (admin only)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.common import Name, Schema, Str200


class TenantCreate(Schema):
    name: Name


class TenantPublic(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime


class ApiKeyCreate(Schema):
    name: Str200 = Field(default="", description="What the key is for, e.g. 'nightly export'")


class ApiKeyPublic(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    name: str
    prefix: str = Field(description="First characters of the key, to tell keys apart")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself. Shown only in this response: store it now")
