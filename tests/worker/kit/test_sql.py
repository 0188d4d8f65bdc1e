"""The dialect helpers of `worker.kit.sql`, on Postgres and (where they differ) SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _one(session: Session, expr: Any) -> Any:
    from sqlalchemy import select

    return session.execute(select(expr)).scalar_one()


def _sessions(engine: Engine, tmp_path: Path) -> list[Session]:
    """A Postgres session and a SQLite one (the demo's dialect)."""
    from sqlalchemy import create_engine

    return [Session(engine), Session(create_engine(f"sqlite:///{tmp_path}/t.db"))]


def test_json_and_uuid_text_are_the_same_on_postgres_and_sqlite(engine: Engine,
                                                                  tmp_path: Path) -> None:
    import json
    import uuid

    from sqlalchemy import Uuid, literal

    some = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    for session in _sessions(engine, tmp_path):
        with session:
            name = sql.dialect(session)
            assert _one(session, sql.uuid_text(literal(some, Uuid()), name)) == str(some)
            built = _one(session, sql.json_object(name, "a", 1, "b", "x"))
            assert (json.loads(built) if isinstance(built, str) else built) == {"a": 1, "b": "x"}
            empty = _one(session, sql.empty_json_object(name))
            assert (json.loads(empty) if isinstance(empty, str) else empty) == {}


def test_skip_locked_locks_on_postgres_only(engine: Engine, tmp_path: Path) -> None:
    from sqlalchemy import select

    from worker.models import Tenant

    postgres, sqlite = _sessions(engine, tmp_path)
    for session, locks in ((postgres, True), (sqlite, False)):
        with session:
            stmt = sql.skip_locked(session, select(Tenant))
            compiled = str(stmt.compile(session.get_bind()))
            assert ("FOR UPDATE SKIP LOCKED" in compiled) is locks
