"""Shared reads of groups and roles, which have the same shape (a named set of members)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import and_
from sqlmodel import Session, col, select

from api.schemas.common import Page, decode_cursor, encode_cursor
from api.schemas.directory import GroupPublic, MemberPublic
from worker.db import tenant_query
from worker.models import ZoomGroup, ZoomGroupMember, ZoomRole, ZoomRoleMember, ZoomUser

Container = type[ZoomGroup] | type[ZoomRole]


def to_public(row: ZoomGroup | ZoomRole, base: str) -> GroupPublic:
    assert row.id is not None
    return GroupPublic(
        id=row.id,
        source_id=row.source_id,
        zoom_id=row.zoom_id,
        name=row.name,
        description=getattr(row, "description", None),
        total_members=row.total_members,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        deleted_at=row.deleted_at,
        links={"self": f"{base}/{row.id}", "members": f"{base}/{row.id}/members"},
    )


def list_containers(
    session: Session, model: Any, tenant_id: uuid.UUID, source_id: uuid.UUID | None,
    include_deleted: bool, cursor: str | None, limit: int, base: str,
) -> Page[GroupPublic]:
    query = tenant_query(model, tenant_id)
    if source_id is not None:
        query = query.where(model.source_id == source_id)
    if not include_deleted:
        query = query.where(col(model.deleted_at).is_(None))
    after = decode_cursor(cursor, int)
    if after is not None:
        query = query.where(col(model.id) > after[0])
    rows = list(session.exec(query.order_by(col(model.id)).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page[GroupPublic](items=[to_public(r, base) for r in rows[:limit]],
                             next_cursor=next_cursor)


def list_members(
    session: Session, container: ZoomGroup | ZoomRole, tenant_id: uuid.UUID,
    include_deleted: bool, cursor: str | None, limit: int,
) -> Page[MemberPublic]:
    member: Any
    if isinstance(container, ZoomGroup):
        member, key = ZoomGroupMember, ZoomGroupMember.group_zoom_id
    else:
        member, key = ZoomRoleMember, ZoomRoleMember.role_zoom_id
    query = (
        select(member, ZoomUser.id)
        .outerjoin(ZoomUser, and_(
            ZoomUser.source_id == member.source_id, ZoomUser.zoom_id == member.user_zoom_id
        ))
        .where(member.tenant_id == tenant_id, member.source_id == container.source_id,
               key == container.zoom_id)
    )
    if not include_deleted:
        query = query.where(col(member.deleted_at).is_(None))
    after = decode_cursor(cursor, int)
    if after is not None:
        query = query.where(col(member.id) > after[0])
    rows = list(session.exec(query.order_by(col(member.id)).limit(limit + 1)))
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1][0].id) if len(rows) > limit else None
    return Page[MemberPublic](
        items=[
            MemberPublic(account_id=account_id, zoom_id=m.user_zoom_id, email=m.email,
                         first_seen_at=m.first_seen_at, last_seen_at=m.last_seen_at,
                         deleted_at=m.deleted_at)
            for m, account_id in page
        ],
        next_cursor=next_cursor,
    )
