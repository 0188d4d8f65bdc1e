"""The few SQL spellings that differ between Postgres (production) and SQLite (the demo).

The services say what they want (an upsert statement, a transaction lock, a UTC day) and this
module says it in the session's dialect, so the SQLite branches live here and in
`worker.kit.upsert`, not spread through the services.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import JSON, Date, String, Table, cast, func, literal, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from worker.db import is_postgres


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def insert(session: Session, table: Table) -> Any:
    """`INSERT` with the dialect's `ON CONFLICT` (`on_conflict_do_update` / `_do_nothing`)."""
    return insert_in(dialect(session), table)


def insert_in(dialect_name: str, table: Table) -> Any:
    """`insert` for a dialect by name (a statement built once per dialect, outside a session)."""
    return postgresql.insert(table) if dialect_name == "postgresql" else sqlite.insert(table)


def skip_locked(session: Session, stmt: Any) -> Any:
    """``stmt`` locking the rows it selects and passing over those another transaction holds
    (Postgres). SQLite has no row locks and one writer at a time: the plain select is enough."""
    return stmt.with_for_update(skip_locked=True) if is_postgres(session) else stmt


def pages_per_commit(session: Session, pages: int) -> int:
    """How many pages a long write loop may hold in one transaction: `pages` on Postgres, one on
    SQLite, which has one writer at a time (the demo's other processes would meet "database is
    locked" while a transaction stays open over several pages)."""
    return pages if is_postgres(session) else 1


def without_flush_wait(session: Session) -> None:
    """This transaction's commit does not wait for its WAL to reach the disk (Postgres'
    `synchronous_commit` off, for this transaction only). For the commits of a long write's
    intermediate batches: one fsync a batch was a visible share of a pull's or a chunk's wall
    (bench/RESULTS.md). Only a crash of Postgres itself can lose such a commit, and then only
    its last fraction of a second, the data with the progress it recorded: the retry rewrites
    it (upserts on natural keys). The write's last commit stays synchronous, and flushing it
    flushes every commit before it, so whatever follows a run's outcome (its watermark, the
    tasks sent after it) never stands on a lost commit."""
    if is_postgres(session):
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))


def without_jit(session: Session) -> None:
    """No JIT compilation for the rest of this transaction (Postgres; SQLite has none). For a
    statement whose estimated cost is far above what it runs in: Postgres compiles by the
    estimate (bench/RESULTS.md, the report page)."""
    if is_postgres(session):
        session.execute(text("SET LOCAL jit = off"))


_XACT_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


def xact_lock(session: Session, name: str) -> None:
    """Serialise the transactions that take the same `name` until they end (a Postgres
    advisory transaction lock). SQLite has one writer at a time already: nothing to do."""
    if is_postgres(session):
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        session.execute(_XACT_LOCK, {"k": key})


def utc_day(column: Any, dialect_name: str) -> Any:
    """The UTC day of a timestamp, as a Date: comparable with date parameters and stored as is
    (SQLite's date() yields the same 'YYYY-MM-DD' text SQLAlchemy stores a Date as)."""
    if dialect_name == "postgresql":
        # date() of a timestamptz follows the session time zone; summaries are UTC days.
        return cast(func.timezone("UTC", column), Date)
    return func.date(column, type_=Date)


def json_object(dialect_name: str, *pairs: Any) -> Any:
    """A JSON object of (key, value) ``pairs``, built in the database."""
    if dialect_name == "postgresql":
        return func.json_build_object(*pairs)
    return func.json_object(*pairs)


def empty_json_object(dialect_name: str) -> Any:
    """{} as a JSON value of the dialect."""
    return cast(literal("{}"), JSON) if dialect_name == "postgresql" else literal("{}")


def uuid_text(column: Any, dialect_name: str) -> Any:
    """A Uuid column as the canonical dashed lower-case text (what `str(uuid)` gives); SQLite
    stores a Uuid as 32 hex digits."""
    if dialect_name == "postgresql":
        return cast(column, String)
    hexid = func.lower(cast(column, String))
    return (func.substr(hexid, 1, 8) + "-" + func.substr(hexid, 9, 4) + "-"
            + func.substr(hexid, 13, 4) + "-" + func.substr(hexid, 17, 4) + "-"
            + func.substr(hexid, 21, 12))
