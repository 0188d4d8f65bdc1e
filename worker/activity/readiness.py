"""When a source's insights are first ready: the moment the backfill window's sign-in history
(days active, last sign-in) and the directory it is matched against are both stored.

The insights do not need the participant reports (one Heavy call per meeting, the slow part of a
backfill on a small daily budget), so a source can be "ready" days before its meetings are in.
``Source.insights_ready_at`` is set once, by whichever finishes last (a sign-in chunk or the
directory's aggregation), and shown by `activity-insights status` and the source API.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from worker.models import RunKind, RunStatus, Source, Stream, StreamCursor, SyncRun, utcnow

_OUTSTANDING = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.DEFERRED, RunStatus.RETRYABLE)


def _directory_stored(session: Session, source: Source) -> bool:
    directory = source.governance_source_id or source.id
    found = session.exec(select(func.count()).select_from(SyncRun).where(
        SyncRun.source_id == directory, SyncRun.kind == RunKind.AGGREGATION,
        SyncRun.status == RunStatus.SUCCEEDED)).one()
    return bool(found)


def _signins_complete(session: Session, source: Source) -> bool:
    cursor = session.get(StreamCursor, (source.id, str(Stream.SIGNINS)))
    if cursor is None or cursor.watermark is None:
        return False
    pending = session.exec(select(func.count()).select_from(SyncRun).where(
        SyncRun.source_id == source.id, SyncRun.kind == RunKind.ACTIVITY,
        SyncRun.stream == Stream.SIGNINS, col(SyncRun.parent_id).is_not(None),
        col(SyncRun.status).in_(_OUTSTANDING))).one()
    return not pending


def mark_if_ready(session: Session, source: Source, now: datetime | None = None) -> bool:
    """Set ``insights_ready_at`` if this is the first moment both inputs are stored (the caller
    commits). Returns whether it was set now."""
    if source.insights_ready_at is not None:
        return False
    if not (_signins_complete(session, source) and _directory_stored(session, source)):
        return False
    source.insights_ready_at = now or utcnow()
    return True


def mark_governed_if_ready(session: Session, directory: Source,
                           now: datetime | None = None) -> None:
    """The directory just completed: the source itself and the activity-only sources matched
    against it may be ready now."""
    mark_if_ready(session, directory, now)
    for source in session.exec(select(Source).where(
            Source.governance_source_id == directory.id,
            col(Source.insights_ready_at).is_(None))).all():
        mark_if_ready(session, source, now)
