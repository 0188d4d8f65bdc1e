"""How far the daily sign-in pull looks back, given how well the source's webhooks work.

The pull re-reads `activity_lookback_hours` (48 by default) before the stream's watermark
because Zoom's activity report fills in late. Once webhooks deliver those sign-ins within
seconds, that re-read mostly finds what the push already stored, so the look-back shrinks
while the webhooks are *healthy*:

- the source's last webhook arrived within `HEALTHY_WITHIN` (24 h) of the plan, and
- the sign-in chunks of the last reconciliation (the latest plan with finished sign-in chunks)
  all counted `missed_by_webhook`, and the counts add up to 0.

Then the pull looks back a quarter of the setting, never less than `SAFE_MINIMUM_HOURS` (6 h:
what the report may lag even with a working subscription) and never more than the setting
itself. Anything else (no webhook lately, one event the push missed, a pull before the source
had webhooks) brings the full look-back back at the next plan: the rule is re-evaluated every
time, so a shrunk window reverts by itself. Only sign-ins shrink: the other streams have no
webhook behind them.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from worker.models import RunKind, RunStatus, Source, Stream, SyncRun
from worker.models.base import as_utc
from worker.settings import get_settings

HEALTHY_WITHIN = timedelta(hours=24)
SAFE_MINIMUM_HOURS = 6


def _last_reconciliation_missed(session: Session, source_id: uuid.UUID) -> int | None:
    """What the push missed in the last reconciliation of the source; None when that pull did
    not count it (the source had no webhooks then) or there is none."""
    latest = session.exec(
        select(SyncRun.parent_id)
        .where(SyncRun.source_id == source_id, SyncRun.kind == RunKind.ACTIVITY,
               SyncRun.stream == Stream.SIGNINS, SyncRun.status == RunStatus.SUCCEEDED,
               col(SyncRun.parent_id).is_not(None), col(SyncRun.finished_at).is_not(None))
        .order_by(col(SyncRun.finished_at).desc()).limit(1)
    ).first()
    if latest is None:
        return None
    chunks = session.exec(
        select(SyncRun.details).where(SyncRun.parent_id == latest,
                                      SyncRun.stream == Stream.SIGNINS,
                                      SyncRun.status == RunStatus.SUCCEEDED)
    ).all()
    if not chunks or any("missed_by_webhook" not in d for d in chunks):
        return None
    return sum(int(d["missed_by_webhook"]) for d in chunks)


def lookback_hours(session: Session, source_id: uuid.UUID, stream: str, now: datetime) -> int:
    """The look-back of `stream`'s next pull for the source (the module's rule)."""
    configured = get_settings().activity_lookback_hours
    if stream != Stream.SIGNINS:
        return configured
    source = session.get(Source, source_id)
    last = as_utc(source.last_webhook_at) if source is not None else None
    if last is None or now - last > HEALTHY_WITHIN:
        return configured
    if _last_reconciliation_missed(session, source_id) != 0:
        return configured
    return min(configured, max(SAFE_MINIMUM_HOURS, configured // 4))
