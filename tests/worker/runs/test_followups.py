"""Follow-up work is sent once its transaction commits, stamped in it, and never for a
transaction that rolled back (real Postgres, the test's Redis as the broker)."""

from __future__ import annotations

import pytest

from tests.factories import make_source, make_tenant
from worker.db import session_scope
from worker.models import RunKind, SyncRun
from worker.runs.followups import send_after_commit


@pytest.mark.usefixtures("clean_db")
def test_sent_after_the_commit_and_not_after_a_rollback(redis_client) -> None:
    with session_scope() as session:
        source = make_source(session, make_tenant(session))
        run = SyncRun(tenant_id=source.tenant_id, source_id=source.id, kind=RunKind.AGGREGATION)
        session.add(run)
        send_after_commit(session, run)
        session.flush()
        assert redis_client.llen("aggregation") == 0  # not before the commit
    assert redis_client.llen("aggregation") == 1
    with session_scope() as session:
        stored = session.get_one(SyncRun, run.id)
        assert stored.lease_until is not None
        assert stored.details["sends"] == 1

    def fail_after_send_after_commit() -> None:
        with session_scope() as session:
            again = SyncRun(tenant_id=source.tenant_id, source_id=source.id,
                            kind=RunKind.AGGREGATION)
            session.add(again)
            send_after_commit(session, again)
            raise RuntimeError("the transaction fails")

    with pytest.raises(RuntimeError, match="the transaction fails"):
        fail_after_send_after_commit()
    with session_scope() as session:  # a later commit of another transaction sends nothing
        session.add(SyncRun(tenant_id=source.tenant_id, source_id=source.id,
                            kind=RunKind.CORRELATION))
    assert redis_client.llen("aggregation") == 1
