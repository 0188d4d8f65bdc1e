"""Work started by other work (a plan's chunk heads, a chunk's successor, an aggregation's
correlation, a connection test's first runs, the scheduler's due and swept runs, a handed-back
run): one way to send it, and one failure policy.

`send_after_commit(session, row)` stamps the row as sent (its lease, in the same transaction)
and sends its task once that transaction has committed, never before: a fast worker must not
look for a row that is not committed yet. If the broker refuses, the row is committed and
stamped, so the sweep sends it again once its grace has passed; the work that started it is
not failed for it. A rolled-back transaction sends nothing. A session marked `hold_back`
(tests, the benchmarks, the demo: no broker, or a transaction that is rolled back) stamps its
rows the same way and sends nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlmodel import Session

from worker import dispatch
from worker.models import ConnectionTest, SyncRun
from worker.runs.lease import mark_sent, mark_test_sent

log = logging.getLogger(__name__)

_KEY = "ai_send_after_commit"
_HELD_BACK = "ai_followups_held_back"


def stamp(row: SyncRun | ConnectionTest, now: datetime | None = None) -> None:
    """Mark the row as sent (its grace starts), in the caller's transaction."""
    if isinstance(row, ConnectionTest):
        mark_test_sent(row, now)
    else:
        mark_sent(row, now)


def send_after_commit(session: Session, row: SyncRun | ConnectionTest,
                      now: datetime | None = None) -> None:
    stamp(row, now)
    if not session.info.get(_HELD_BACK):
        session.info.setdefault(_KEY, []).append(row)


def hold_back(session: Session) -> None:
    """Follow-ups of this session are stamped as sent, never sent (see the module's doc)."""
    session.info[_HELD_BACK] = True


def send_now(row: SyncRun | ConnectionTest) -> bool:
    """Send a committed, stamped row's task; False (logged) when the broker refused it."""

    try:
        if isinstance(row, ConnectionTest):
            dispatch.enqueue_connection_test(row.id, tenant_id=row.tenant_id,
                                             source_id=row.source_id)
        else:
            dispatch.enqueue_run(row)
        return True
    except Exception as exc:
        log.warning("%s %s [tenant %s] committed but not sent (%s); the sweep sends it",
                    type(row).__name__, row.id, row.tenant_id, type(exc).__name__)
        return False


@event.listens_for(Session, "after_commit")
def _send_committed(session: Any) -> None:
    for row in session.info.pop(_KEY, []):
        send_now(row)


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back(session: Any) -> None:
    session.info.pop(_KEY, None)
