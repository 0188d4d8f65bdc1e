"""Role privileges: one GET /roles/{roleId} per listed role, and which roles are admin roles.

``GET /roles`` lists roles without their privileges; ``GET /roles/{roleId}``
(``getRoleInformation``: scope ``role:read:admin``, rate label Light) adds ``privileges``, a list
of names from Zoom's privileges reference (developers.zoom.us/docs/api/references/privileges),
each ``Resource:Read`` or ``Resource:Edit`` ("User:Edit", "AccountSetting:Read").

**The rule** (``is_admin``): a role has admin privileges when it may change who has access or
how the account is run, i.e. any privilege that is not a ``:Read`` on one of the resources that
govern the account: users (``User``, which includes assigning roles), roles (``Role``), groups
(``Group``), the account and its sub accounts (any resource whose name starts with ``Account``
or ``SubAccount``), billing (``Billing*``) and sign-on and security (``SingleSignOn``,
``Security``). Reading them, or editing what is not account governance (recordings, webinars,
Zoom Rooms, IM groups...), is not admin. Names are compared case-insensitively. Zoom's built-in
Owner ("0") and Admin ("1") roles are privileged by id whatever their list says
(``worker.reports.findings``).

Calls are bounded: one per role of the list just stored, each through the client's rate limiter
under the endpoint's category (``worker.zoom.endpoints``: Light). A role gone between the list
and its call keeps what was stored; without the scope the privileges stay unknown and the run
notes the missing optional scope, as ``pull_roles`` does. Nothing here fails the aggregation
that a ``GET /roles`` answer did not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import update
from sqlmodel import Session, col, select

from worker.models import ZoomRole
from worker.zoom import codes
from worker.zoom.errors import ZoomError, ZoomNotFound, ZoomScopeError

if TYPE_CHECKING:
    from worker.aggregation.service import Pull, ZoomApi

log = logging.getLogger(__name__)

# Resources whose non-read privileges make a role an admin one (see the module's rule).
GOVERNING_RESOURCES = ("user", "role", "group", "singlesignon", "security")
GOVERNING_PREFIXES = ("account", "subaccount", "billing")
READ_ACTIONS = ("read",)
# getRoleInformation's "role not found" codes: 300 and 1034 (spec), 1034 (zoom-api.md).
ROLE_GONE_CODES = frozenset({codes.BAD_REQUEST, 1034})


def is_admin(privileges: Iterable[str]) -> bool:
    """The module's rule: any non-read privilege on a resource that governs the account."""
    for privilege in privileges:
        resource, _, action = privilege.strip().lower().partition(":")
        if action in READ_ACTIONS or not action:
            continue
        if resource in GOVERNING_RESOURCES or resource.startswith(GOVERNING_PREFIXES):
            return True
    return False


def parse_privileges(body: dict[str, Any]) -> list[str] | None:
    """The ``privileges`` of a getRoleInformation answer: its strings, in Zoom's order (None
    when the answer has no usable list)."""
    items = body.get("privileges")
    if not isinstance(items, list):
        return None
    return [p for p in items if isinstance(p, str) and p.strip()]


def pull_role_privileges(session: Session, client: ZoomApi, pull: Pull) -> None:
    """After ``pull_roles``: each role's privileges and admin flag, one call per role."""
    if pull.notes.get("roles_from_users_only"):
        return  # no role:read:admin: getRoleInformation needs the same scope
    role_ids = list(session.exec(
        select(ZoomRole.zoom_id).where(col(ZoomRole.source_id) == pull.source_id,
                                       col(ZoomRole.last_seen_at) >= pull.since,
                                       col(ZoomRole.from_users_only).is_(False))
        .order_by(col(ZoomRole.zoom_id))
    ))
    tally = pull.tally("role_privileges")
    for role_id in role_ids:
        pull.check()
        try:
            body = client.get(f"/roles/{quote(role_id, safe='')}")
        except ZoomScopeError as exc:
            missing = exc.missing or [codes.scope_hint("/roles/{id}", ())]
            known = pull.notes.setdefault("missing_optional_scopes", [])
            known.extend(m for m in missing if m not in known)
            return
        except ZoomError as exc:
            if not isinstance(exc, ZoomNotFound) and exc.code not in ROLE_GONE_CODES:
                raise
            # Deleted since the list: what is stored stays (the next pull marks it deleted).
            log.info("role %s of source %s is gone from Zoom; privileges kept", role_id,
                     pull.source_id)
            continue
        privileges = parse_privileges(body)
        if privileges is None:
            pull.warnings.skip("role_privileges", "no privileges list")
            continue
        session.execute(
            update(ZoomRole)
            .where(col(ZoomRole.source_id) == pull.source_id, col(ZoomRole.zoom_id) == role_id)
            .values(privileges=privileges, admin_privileges=is_admin(privileges))
        )
        session.commit()
        tally.seen += 1
