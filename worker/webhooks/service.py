"""Processing one inbox event: sign-ins into the activity table, user events into the directory.

Every branch is idempotent, so a redelivered task, a duplicate delivery or the sweep's re-send
ends in the same rows: the inbox row is locked and marked processed in the same transaction as
its effects, and the effects themselves are upserts or guarded updates.

Sign-ins and the pull, as one row per event. Zoom's webhook object has no `ip_address`, which
the pull's natural key hashes, so a pushed event cannot carry the pull's key. It is stored under
a *push key* (source, email, time, type, client type: what both carry), and
- the pull, meeting its pushed twin, re-keys that row to the pull's key and fills in the IP
  (`reconcile.claim_pushed`): the pull's own insert is then a no-op, and the row stays one row;
- a push arriving after the pull already stored the event finds the pulled twin and adds
  nothing. Both sides take the same per-source advisory lock, so they cannot cross.

Directory events compare Zoom's `event_ts` with the row's `last_seen_at` (the time the freshest
information about it was written, by a pull or an event): an older event never overwrites newer
data. An event that changes a row clears its `content_hash`, so the next pull rewrites it whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from worker.activity import summaries
from worker.db import session_scope
from worker.kit import sql
from worker.models import (
    ActivityEvent,
    Source,
    SourceStatus,
    WebhookEvent,
    WebhookStatus,
    ZoomGroupMember,
    ZoomRoleMember,
    ZoomUser,
    utcnow,
)
from worker.models.base import as_utc
from worker.zoom.items import parse_time

log = logging.getLogger(__name__)

SIGN_IN_EVENTS = {"user.signed_in": "Sign in", "user.signed_out": "Sign out"}
USER_EVENTS = {"user.created", "user.updated", "user.activated", "user.deactivated",
               "user.deleted", "user.disassociated"}
MEETING_ENDED = "meeting.ended"
# Zoom's user fields a user event may carry, as ZoomUser columns (TEXT: stored whole, as the
# pull stores them, so an event and the next pull agree on every value).
_USER_FIELDS = {name: name for name in (
    "email", "first_name", "last_name", "display_name", "status", "role_id", "dept",
    "employee_unique_id", "timezone", "last_client_version")}


def _sha(*parts: Any) -> str:
    joined = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(joined.encode()).hexdigest()


def push_key(source_id: uuid.UUID, email: str, when: datetime, kind: str,
             client_type: str | None) -> str:
    """The key of a sign-in known from a webhook: what the push and the pull both carry. The
    client type is compared without case (Zoom's two documents spell it differently)."""
    return _sha("push", source_id, email.lower(), when.astimezone(UTC).isoformat(), kind,
                (client_type or "").lower())


def lock_signins(session: Session, source_id: uuid.UUID) -> None:
    """Serialise the pushed-sign-in merge of one source (push processing vs the pull's claim)."""
    sql.xact_lock(session, f"signin-merge:{source_id}")


def _ms(value: datetime | None) -> int | None:
    value = as_utc(value)
    return None if value is None else int(value.timestamp() * 1000)


# --- entry point --------------------------------------------------------------------------


def process(event_id: uuid.UUID) -> str:
    """Apply one inbox event; returns its outcome. A processed event is left alone."""
    with session_scope() as session:
        row = session.get(WebhookEvent, event_id, with_for_update=True)
        if row is None:
            return "missing"
        if row.status != WebhookStatus.PENDING:
            return f"noop: already {row.status}"
        source = session.get(Source, row.source_id)
        if source is None:
            return "missing source"
        try:
            message = json.loads(row.body)
        except ValueError:  # verified at intake; kept only as a guard
            message = {}
        status, outcome = _apply(session, source, row, message)
        row.status, row.outcome, row.processed_at = status, outcome[:200], utcnow()
        session.add(row)
        log.info("webhook %s %s of tenant %s, source %s: %s", row.id, row.event,
                 source.tenant_id, source.id, outcome)
    if row.event == MEETING_ENDED and status == WebhookStatus.PROCESSED:
        from worker.webhooks import meetings

        meetings.enqueue_participants(row)  # after the commit: the task reads the row
    return outcome


def _apply(session: Session, source: Source, row: WebhookEvent, message: dict[str, Any]
           ) -> tuple[str, str]:
    if source.status == SourceStatus.DISABLED:
        return WebhookStatus.IGNORED, "source disabled"
    payload = message.get("payload") if isinstance(message.get("payload"), dict) else {}
    obj = payload.get("object") if isinstance(payload, dict) else None
    if not isinstance(obj, dict):
        return WebhookStatus.IGNORED, "no payload.object"
    event = row.event
    if event in SIGN_IN_EVENTS:
        return sign_in(session, source, SIGN_IN_EVENTS[event], obj)
    if event in USER_EVENTS:
        return user_event(session, source, event, row.event_ts, obj)
    if event == MEETING_ENDED:
        return meeting_ended(session, source, obj)
    return WebhookStatus.IGNORED, f"event {event!r} not used"


# --- sign-ins -----------------------------------------------------------------------------


def sign_in(session: Session, source: Source, kind: str, obj: dict[str, Any]
            ) -> tuple[str, str]:
    email = str(obj.get("email") or "").lower()
    when = parse_time(obj.get("date_time"))
    if not email or when is None:
        return WebhookStatus.IGNORED, "sign-in without email or date_time"
    when = when.astimezone(UTC)
    client_type = str(obj.get("client_type") or "") or None
    version = str(obj.get("version") or "") or None
    key = push_key(source.id, email, when, kind, client_type)
    lock_signins(session, source.id)
    twin = session.exec(
        select(ActivityEvent.id).where(
            ActivityEvent.source_id == source.id, ActivityEvent.email == email,
            ActivityEvent.time == when, ActivityEvent.type == kind,
            ActivityEvent.event_key != key,
            func.lower(func.coalesce(ActivityEvent.client_type, "")) == (client_type or "").lower(),
        ).limit(1)
    ).first()
    if twin is not None:
        return WebhookStatus.PROCESSED, "sign-in already pulled"
    table = ActivityEvent.__table__  # type: ignore[attr-defined]
    insert = sql.insert(session, table)
    result: Any = session.execute(
        insert.values(tenant_id=source.tenant_id, source_id=source.id, event_key=key,
                      email=email, time=when, type=kind, ip_address=None,
                      client_type=client_type, version=version)
        .on_conflict_do_nothing(index_elements=["source_id", "event_key"])
        .returning(table.c.id)
    )
    if result.scalar_one_or_none() is None:
        return WebhookStatus.PROCESSED, "sign-in already stored"
    summaries.recompute(session, source, [when.date()], emails=[email])
    return WebhookStatus.PROCESSED, "sign-in stored"


# --- directory ----------------------------------------------------------------------------


def _user_changes(obj: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, column in _USER_FIELDS.items():
        if name in obj and obj[name] is not None:
            changes[column] = str(obj[name])
    if "type" in obj and isinstance(obj["type"], int):
        changes["type"] = obj["type"]
    if isinstance(obj.get("group_ids"), list):
        changes["group_ids"] = list(obj["group_ids"])
    return changes


def user_event(session: Session, source: Source, event: str, event_ts: int | None,
               obj: dict[str, Any]) -> tuple[str, str]:
    zoom_id = str(obj.get("id") or "")[:64]
    if not zoom_id:
        return WebhookStatus.IGNORED, "user event without an id"
    when = (datetime.fromtimestamp(event_ts / 1000, UTC) if event_ts is not None else utcnow())
    user = session.exec(
        select(ZoomUser).where(ZoomUser.source_id == source.id, ZoomUser.zoom_id == zoom_id)
        .with_for_update()
    ).first()
    if user is not None and event_ts is not None and (_ms(user.last_seen_at) or 0) > event_ts:
        return WebhookStatus.IGNORED, "older than the stored row (a newer pull or event)"
    changes = _user_changes(obj)
    if event == "user.activated":
        changes["status"] = "active"
    elif event == "user.deactivated":
        changes["status"] = "inactive"
    if event in {"user.deleted", "user.disassociated"}:
        if user is None:
            return WebhookStatus.IGNORED, "deleted user was never stored"
        if user.deleted_at is None:
            user.deleted_at = when
            _memberships_gone(session, source.id, zoom_id, when)
        user.last_seen_at = max(as_utc(user.last_seen_at) or when, when)
        session.add(user)
        return WebhookStatus.PROCESSED, f"user marked deleted ({event})"
    if user is None:
        if event != "user.created" and "email" not in changes:
            # A partial row would be worse than none: the next pull brings the whole user.
            return WebhookStatus.IGNORED, "unknown user; left to the next pull"
        if event == "user.created" and "status" not in changes:
            # Zoom's "create" sends an invitation (pending); the other creation types are
            # active at once.
            created = str(obj.get("creation_type") or "")
            changes["status"] = "pending" if created in ("", "create") else "active"
        user = ZoomUser(tenant_id=source.tenant_id, source_id=source.id, zoom_id=zoom_id,
                        first_seen_at=when, last_seen_at=when, content_hash="", **changes)
        session.add(user)
        return WebhookStatus.PROCESSED, f"user stored ({event})"
    for column, value in changes.items():
        setattr(user, column, value)
    if event in {"user.created", "user.activated"}:
        user.deleted_at = None
    user.last_seen_at = when
    user.content_hash = ""  # the next pull rewrites the row from Zoom's whole record
    session.add(user)
    return WebhookStatus.PROCESSED, f"user updated ({event}: {', '.join(sorted(changes))})"


def _memberships_gone(session: Session, source_id: uuid.UUID, zoom_id: str, when: datetime
                      ) -> None:
    """As a full pull would: the deleted user's group and role memberships go with it."""
    for model in (ZoomGroupMember, ZoomRoleMember):
        session.execute(
            update(model)
            .where(col(model.source_id) == source_id, col(model.user_zoom_id) == zoom_id,
                   col(model.deleted_at).is_(None))
            .values(deleted_at=when)
        )


# --- meetings -----------------------------------------------------------------------------


def meeting_ended(session: Session, source: Source, obj: dict[str, Any]
                  ) -> tuple[str, str]:
    from worker.webhooks import meetings

    return meetings.ended(session, source, obj)
