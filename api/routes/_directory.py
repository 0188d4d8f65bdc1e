"""Groups and roles, which have the same shape (a named set of members): one set of routes.

`directory_router` builds the router of either; `api.routes.groups` and `api.routes.roles` each
declare theirs with it. (No ``from __future__ import annotations`` here: the handlers are made
per resource, and FastAPI must read their parameter types without a module-level name.)
"""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from sqlalchemy import and_
from sqlmodel import Session, col, select

from api.deps import SessionDep, TenantDep, get_or_404
from api.errors import PROBLEM_RESPONSES
from api.pagination import keyset_page
from api.routes.accounts import SourceFilter, check_source
from api.schemas.common import MAX_BIGINT, Limit, Page, public
from api.schemas.directory import GroupPublic, MemberPublic
from worker.db import tenant_query
from worker.models import ZoomGroup, ZoomGroupMember, ZoomRole, ZoomRoleMember, ZoomUser

Container = type[ZoomGroup] | type[ZoomRole]


def to_public(row: ZoomGroup | ZoomRole, base: str) -> GroupPublic:
    # Groups have no description in Zoom's list; roles do.
    return public(GroupPublic, row, description=getattr(row, "description", None),
                  links={"self": f"{base}/{row.id}", "members": f"{base}/{row.id}/members"})


def list_containers(
    session: Session, model: Any, tenant_id: uuid.UUID, source_id: uuid.UUID | None,
    include_deleted: bool, cursor: str | None, limit: int, base: str,
) -> Page[GroupPublic]:
    query = tenant_query(model, tenant_id)
    if source_id is not None:
        query = query.where(model.source_id == source_id)
    if not include_deleted:
        query = query.where(col(model.deleted_at).is_(None))
    rows: list[ZoomGroup | ZoomRole]
    rows, next_cursor = keyset_page(session, query, [col(model.id)], cursor, limit,
                                    lambda r: (r.id,))
    return Page[GroupPublic](items=[to_public(r, base) for r in rows], next_cursor=next_cursor)


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
    page: list[tuple[Any, int | None]]
    page, next_cursor = keyset_page(session, query, [col(member.id)], cursor, limit,
                                    lambda r: (r[0].id,))
    return Page[MemberPublic](
        items=[public(MemberPublic, m, account_id=account_id, zoom_id=m.user_zoom_id)
               for m, account_id in page],
        next_cursor=next_cursor,
    )


def directory_router(model: Container, noun: str) -> APIRouter:
    """The routes of Zoom groups or roles (``noun`` "group" or "role"): list them, read one,
    list its members. Paths, operation ids and summaries read as if written out per resource."""
    plural = f"{noun}s"
    base = f"/v1/{plural}"
    router = APIRouter(prefix=base, tags=[plural], responses=PROBLEM_RESPONSES)
    # The path names the id after the resource (group_id, role_id), as the OpenAPI shows it.
    ZoomId = Annotated[int, Path(ge=1, le=MAX_BIGINT, alias=f"{noun}_id")]
    IncludeDeleted = Annotated[
        bool, Query(description=f"Include {plural} or members gone from Zoom")
    ]
    Cursor = Annotated[str | None, Query(max_length=500)]

    def list_all(
        tenant_id: TenantDep,
        session: SessionDep,
        source_id: SourceFilter = None,
        include_deleted: IncludeDeleted = False,
        cursor: Cursor = None,
        limit: Annotated[Limit, Query()] = 100,
    ) -> Page[GroupPublic]:
        check_source(session, tenant_id, source_id)
        return list_containers(session, model, tenant_id, source_id, include_deleted, cursor,
                               limit, base)

    def get_one(item_id: ZoomId, tenant_id: TenantDep, session: SessionDep) -> GroupPublic:
        return to_public(get_or_404(session, model, tenant_id, item_id, noun), base)

    def list_item_members(
        item_id: ZoomId,
        tenant_id: TenantDep,
        session: SessionDep,
        include_deleted: IncludeDeleted = False,
        cursor: Cursor = None,
        limit: Annotated[Limit, Query()] = 100,
    ) -> Page[MemberPublic]:
        container = get_or_404(session, model, tenant_id, item_id, noun)
        return list_members(session, container, tenant_id, include_deleted, cursor, limit)

    router.add_api_route("", list_all, methods=["GET"], response_model=Page[GroupPublic],
                         name=f"list_{plural}", description=f"List Zoom {plural}.")
    router.add_api_route(f"/{{{noun}_id}}", get_one, methods=["GET"], response_model=GroupPublic,
                         name=f"get_{noun}", description=f"Read a Zoom {noun}.")
    router.add_api_route(f"/{{{noun}_id}}/members", list_item_members, methods=["GET"],
                         response_model=Page[MemberPublic], name=f"list_{noun}_members",
                         description=f"List a Zoom {noun}'s members.")
    return router
