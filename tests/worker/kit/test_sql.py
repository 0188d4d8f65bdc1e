"""The dialect helpers of `worker.kit.sql` on Postgres."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from worker.kit import sql


def _synchronous_commit(session: Session) -> str:
    return str(session.execute(text("SHOW synchronous_commit")).scalar_one())


def test_a_commit_without_flush_wait_is_this_transactions_only(engine: Engine) -> None:
    # Real transactions: the rolled-back `session` fixture's commits are savepoints.
    with Session(engine) as session:
        before = _synchronous_commit(session)
        assert before != "off"
        sql.without_flush_wait(session)
        assert _synchronous_commit(session) == "off"
        session.commit()
        # The next transaction (the write's last commit) waits for the flush again.
        assert _synchronous_commit(session) == before
