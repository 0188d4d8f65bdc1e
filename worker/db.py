"""Engine and sessions. One engine per process, created lazily from settings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine, select
from sqlmodel.sql.expression import SelectOfScalar

from worker.settings import get_settings

_engines: dict[str, Engine] = {}

T = TypeVar("T", bound=SQLModel)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the demo's API read while a worker writes; FKs make ON DELETE CASCADE work.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def get_engine(url: str | None = None) -> Engine:
    url = url or get_settings().database_url
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # A bounded connect: /readyz and tasks must fail fast on an unreachable host.
            engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                                   connect_args={"connect_timeout": 5})
        _engines[url] = engine
    return engine


def dispose_engines(*, close: bool = False) -> None:
    """Forget the cached engines.

    After fork (Celery prefork children) the connections belong to the parent, so a child
    drops them without closing (close=False). A process that is done with its engines (the
    test session's end) passes close=True: a dropped open psycopg connection is a leak.
    """
    for engine in _engines.values():
        engine.dispose(close=close)
    _engines.clear()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def tenant_query(model: type[T], tenant_id: uuid.UUID) -> SelectOfScalar[T]:
    """The only way API code should select tenant rows: the tenant filter cannot be forgotten."""
    column = getattr(model, "tenant_id", None)
    if column is None:
        raise TypeError(f"{model.__name__} is not tenant-scoped")
    return select(model).where(column == tenant_id)


def get_for_tenant(
    session: Session, model: type[T], tenant_id: uuid.UUID, row_id: Any
) -> T | None:
    """Fetch one row by primary key, or None when it is missing *or belongs to another tenant*
    (callers answer 404 either way, so ids of other tenants leak nothing)."""
    row = session.get(model, row_id)
    if row is None or getattr(row, "tenant_id", None) != tenant_id:
        return None
    return row


def is_postgres(session: Session) -> bool:
    bind = session.get_bind()
    return bind.dialect.name == "postgresql"
