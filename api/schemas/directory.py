"""Identities and the Zoom directory (accounts, groups, roles) as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Defined with the worker's CSV parser, which validates rows with it: one definition of a row.
from worker.identities import IdentityIn as IdentityIn
from worker.identities import IdentityStatus as IdentityStatus


class IdentityUpsertResult(BaseModel):
    received: int = Field(description="Rows in the request (duplicates of an external_id count)")
    inserted: int
    updated: int


class IdentityPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    external_id: str
    email: str
    display_name: str
    status: str
    terminated_at: datetime | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CorrelatedAccount(BaseModel):
    account_id: int | None = Field(description="Zoom account id in this API (null if gone)")
    source_id: uuid.UUID
    zoom_id: str
    email: str | None
    method: str
    correlated_at: datetime


class IdentityDetail(IdentityPublic):
    accounts: list[CorrelatedAccount]


class AccountPublic(BaseModel):
    id: int
    source_id: uuid.UUID
    zoom_id: str
    email: str
    first_name: str
    last_name: str
    display_name: str
    type: int | None
    status: str
    role_id: str | None
    dept: str | None
    employee_unique_id: str | None
    group_ids: list[Any]
    timezone: str | None
    last_client_version: str | None
    zoom_created_at: datetime | None
    last_login_time: datetime | None
    first_seen_at: datetime
    last_seen_at: datetime
    deleted_at: datetime | None
    identity_id: uuid.UUID | None = Field(description="Correlated identity, if any")
    correlation_method: str | None


class GroupRef(BaseModel):
    id: int
    zoom_id: str
    name: str


class AccountDetail(AccountPublic):
    groups: list[GroupRef]
    roles: list[GroupRef]


class GroupPublic(BaseModel):
    id: int
    source_id: uuid.UUID
    zoom_id: str
    name: str
    description: str | None = None
    total_members: int | None
    first_seen_at: datetime
    last_seen_at: datetime
    deleted_at: datetime | None
    links: dict[str, str]


class MemberPublic(BaseModel):
    account_id: int | None = Field(description="The member's Zoom account in this API")
    zoom_id: str
    email: str
    first_seen_at: datetime
    last_seen_at: datetime
    deleted_at: datetime | None
