"""The pull's side of the merge: the daily sign-in pull repairs what the push missed.

For each pulled sign-in, a row the webhook stored under its push key is re-keyed to the pull's
key and given the pull's IP address (`claim_pushed`), so the pull's insert finds it and adds
nothing. Pulled events that neither a webhook nor an earlier pull had stored are the ones the
push missed: counted as `missed_by_webhook` on the run, from the first event the inbox holds
(before it the source had no webhooks to miss anything). A source that never received a
webhook pays nothing for this.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlmodel import Session

from worker.kit.upsert import Appending, Written, upsert
from worker.models import ActivityEvent, SyncRun
from worker.webhooks.inbox import webhooks_since
from worker.webhooks.service import lock_signins, push_key


def claim_pushed(session: Session, source_id: uuid.UUID, rows: list[dict[str, Any]]) -> int:
    """Re-key pushed twins of `rows` (pulled sign-ins) to the pull's key; returns how many.
    Each statement probes the unique (source_id, event_key) index once."""
    if not rows:
        return 0
    lock_signins(session, source_id)
    table = ActivityEvent.__table__  # type: ignore[attr-defined]
    stmt = (
        update(table)
        .where(table.c.source_id == bindparam("s"), table.c.event_key == bindparam("pk"))
        .values(event_key=bindparam("k"), ip_address=bindparam("ip"),
                version=bindparam("v"), client_type=bindparam("ct"))
    )
    params = [
        {"s": source_id, "pk": push_key(source_id, r["email"], r["time"], r["type"],
                                        r["client_type"]),
         "k": r["event_key"], "ip": r["ip_address"], "v": r["version"], "ct": r["client_type"]}
        for r in rows
    ]
    result: Any = session.connection().execute(stmt, params)
    return max(int(result.rowcount or 0), 0)


def append_signins(session: Session, appending: Appending, source_id: uuid.UUID,
                   rows: list[dict[str, Any]]) -> bool:
    """A page of a window that held no events (``expect_new``) sent into the chunk's open COPY
    (`kit.upsert.Appending`, counted when it ends); False when the source's webhooks report
    events, its pushed twins to be claimed first: `store_signins` then. Whether they do is
    read as the COPY opens (once a batch of pages; nothing can be read while it is open)."""
    if not appending.open and webhooks_since(session, source_id) is not None:
        return False
    appending.write(rows)
    return True


def store_signins(session: Session, run_id: uuid.UUID, source_id: uuid.UUID,
                  rows: list[dict[str, Any]], *, expect_new: bool = False) -> Written:
    """The sign-in pull's write of one page: claim pushed twins, insert the rest, and add the
    events the push missed to the run's `missed_by_webhook`. ``expect_new``: the chunk's
    window held no events when it began (`upsert`'s fast path; a source with webhooks never
    takes it, its pushed twins are re-keyed first)."""
    since: datetime | None = webhooks_since(session, source_id)
    if since is None:
        return upsert(session, ActivityEvent, rows, conflict=("source_id", "event_key"),
                      immutable=True, expect_new=expect_new)
    claim_pushed(session, source_id, rows)
    before = [r for r in rows if r["time"] < since]
    after = [r for r in rows if r["time"] >= since]
    old = upsert(session, ActivityEvent, before, conflict=("source_id", "event_key"),
                 immutable=True)
    new = upsert(session, ActivityEvent, after, conflict=("source_id", "event_key"),
                 immutable=True)
    run = session.get_one(SyncRun, run_id)
    if new.inserted or "missed_by_webhook" not in run.details:
        run.details = {**run.details,
                       "missed_by_webhook": int(run.details.get("missed_by_webhook", 0))
                       + (new.inserted or 0)}
    inserted = (None if old.inserted is None or new.inserted is None
                else old.inserted + new.inserted)
    return Written(rows=old.rows + new.rows, inserted=inserted)
