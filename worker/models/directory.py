"""Zoom's directory as aggregated: users, groups, roles and memberships.

Each row keeps first/last seen and ``deleted_at``: an account missing from a complete pull is
marked deleted, never removed, so access reviews can still see what existed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from worker.models.base import BigIntPK, JsonField, TenantScoped, TimestampField, utcnow
from worker.models.tenancy import source_column, source_of_tenant_fk, tenant_column

# Every pull rewrites every row it sees (`last_seen_at` moves: the deletion sweep and the webhooks'
# "older event" rule read it), so these tables' heap pages keep room for the new versions: an
# update that finds room on its own page and changes no indexed column is HOT (no new entry in
# any index), which is most of the cost of a no-change pull (bench/RESULTS.md, "no-change
# aggregation"). Inserts fill pages to half: a pull updates all of a page's rows in one
# transaction (no old version can be pruned meanwhile), so each needs room for its new one. At
# 70% only 45% of a no-change pull's updates were HOT; at 50%, all (issue 15).
DIRECTORY_FILLFACTOR = 50
_ROOM_FOR_UPDATES = {"postgresql_with": {"fillfactor": DIRECTORY_FILLFACTOR}}


class _Seen(SQLModel):
    first_seen_at: datetime = TimestampField(nullable=False, default_factory=utcnow)
    last_seen_at: datetime = TimestampField(nullable=False, default_factory=utcnow)
    deleted_at: datetime | None = TimestampField()


class ZoomUser(_Seen, TenantScoped, table=True):
    __tablename__ = "zoom_user"
    __table_args__ = (
        source_of_tenant_fk("zoom_user"),
        UniqueConstraint("source_id", "zoom_id", name="uq_zoom_user_source_zoom_id"),
        Index("ix_zoom_user_source_email", "source_id", "email"),
        Index("ix_zoom_user_source_employee", "source_id", "employee_unique_id"),
        _ROOM_FOR_UPDATES,
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: uuid.UUID = Field(sa_column=tenant_column())
    source_id: uuid.UUID = Field(sa_column=source_column())
    zoom_id: str = Field(sa_type=Text)
    email: str = Field(default="", sa_type=Text)
    first_name: str = Field(default="", sa_type=Text)
    last_name: str = Field(default="", sa_type=Text)
    display_name: str = Field(default="", sa_type=Text)
    type: int | None = None  # 1 Basic, 2 Licensed, 99 None
    status: str = Field(default="", sa_type=Text)
    role_id: str | None = Field(default=None, sa_type=Text)
    dept: str | None = Field(default=None, sa_type=Text)
    employee_unique_id: str | None = Field(default=None, sa_type=Text)
    group_ids: list[str] = JsonField(list)
    timezone: str | None = Field(default=None, sa_type=Text)
    verified: int | None = None
    last_client_version: str | None = Field(default=None, sa_type=Text)
    zoom_created_at: datetime | None = TimestampField()
    last_login_time: datetime | None = TimestampField()
    custom_attributes: list[dict[str, Any]] = JsonField(list)
    # Hash of the fields above as Zoom sent them: tells "updated" from "unchanged" cheaply.
    content_hash: str = Field(default="", sa_type=String(64))


class ZoomGroup(_Seen, TenantScoped, table=True):
    __tablename__ = "zoom_group"
    __table_args__ = (
        source_of_tenant_fk("zoom_group"),
        UniqueConstraint("source_id", "zoom_id", name="uq_zoom_group_source_zoom_id"),
        _ROOM_FOR_UPDATES,
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: uuid.UUID = Field(sa_column=tenant_column())
    source_id: uuid.UUID = Field(sa_column=source_column())
    zoom_id: str = Field(sa_type=Text)
    name: str = Field(default="", sa_type=Text)
    total_members: int | None = None
    content_hash: str = Field(default="", sa_type=String(64))


class ZoomRole(_Seen, TenantScoped, table=True):
    __tablename__ = "zoom_role"
    __table_args__ = (
        source_of_tenant_fk("zoom_role"),
        UniqueConstraint("source_id", "zoom_id", name="uq_zoom_role_source_zoom_id"),
        _ROOM_FOR_UPDATES,
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: uuid.UUID = Field(sa_column=tenant_column())
    source_id: uuid.UUID = Field(sa_column=source_column())
    zoom_id: str = Field(sa_type=Text)
    name: str = Field(default="", sa_type=Text)
    description: str | None = Field(default=None, sa_type=Text)
    total_members: int | None = None
    # Roles can be known only from users' role_id when the app lacks role:read:admin.
    from_users_only: bool = False
    content_hash: str = Field(default="", sa_type=String(64))
    # From GET /roles/{roleId} (worker.aggregation.privileges): Zoom's privilege names as sent
    # ("User:Edit"); None while not known (never fetched, or no role:read:admin).
    privileges: list[str] | None = Field(default=None, sa_type=JSON)
    # Whether those privileges make the role an admin one (the rule in that module); the
    # findings read this flag, never the role's name.
    admin_privileges: bool = False


class ZoomGroupMember(_Seen, TenantScoped, table=True):
    __tablename__ = "zoom_group_member"
    __table_args__ = (
        source_of_tenant_fk("zoom_group_member"),
        UniqueConstraint(
            "source_id", "group_zoom_id", "user_zoom_id", name="uq_zoom_group_member"
        ),
        Index("ix_zoom_group_member_user", "source_id", "user_zoom_id"),
        _ROOM_FOR_UPDATES,
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: uuid.UUID = Field(sa_column=tenant_column())
    source_id: uuid.UUID = Field(sa_column=source_column())
    group_zoom_id: str = Field(sa_type=Text)
    user_zoom_id: str = Field(sa_type=Text)
    email: str = Field(default="", sa_type=Text)


class ZoomRoleMember(_Seen, TenantScoped, table=True):
    __tablename__ = "zoom_role_member"
    __table_args__ = (
        source_of_tenant_fk("zoom_role_member"),
        UniqueConstraint("source_id", "role_zoom_id", "user_zoom_id", name="uq_zoom_role_member"),
        Index("ix_zoom_role_member_user", "source_id", "user_zoom_id"),
        _ROOM_FOR_UPDATES,
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: uuid.UUID = Field(sa_column=tenant_column())
    source_id: uuid.UUID = Field(sa_column=source_column())
    role_zoom_id: str = Field(sa_type=Text)
    user_zoom_id: str = Field(sa_type=Text)
    email: str = Field(default="", sa_type=Text)
