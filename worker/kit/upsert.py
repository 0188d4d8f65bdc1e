"""Bulk upsert of one page of rows on a natural key, in one statement batch.

Postgres, big pages: COPY into a temporary table, then one `INSERT ... SELECT ... ON CONFLICT`
(about three times a multi-row INSERT here, see architecture.md). Small pages, and SQLite (the
demo): multi-row `INSERT ... ON CONFLICT DO UPDATE`. Both give the same rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Json
from sqlalchemy import JSON, Table, literal_column, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel

# Below this many rows a multi-row INSERT is as fast as COPY and needs no temporary table.
# A Zoom page holds at most 300 rows: above 100 the COPY path measured 2.5x faster for
# activity and 5x for a first aggregation (bench/RESULTS.md, finding 1).
COPY_THRESHOLD = 100


@dataclass(frozen=True)
class Written:
    """What one upsert did. ``inserted`` is None where the database cannot tell (SQLite's
    ON CONFLICT DO UPDATE); otherwise the rest of ``rows`` were updated (DO UPDATE) or already
    there and left alone (DO NOTHING, immutable rows such as sign-in events)."""

    rows: int
    inserted: int | None

    @property
    def existing(self) -> int | None:
        return None if self.inserted is None else self.rows - self.inserted


def _table(model: type[SQLModel] | Table) -> Table:
    if isinstance(model, Table):
        return model
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def dedupe(rows: Iterable[dict[str, Any]], key: Sequence[str]) -> list[dict[str, Any]]:
    """Last row wins per key: ON CONFLICT refuses to touch one row twice in a statement, and
    Zoom pages do repeat items (a participant who rejoined within the same second)."""
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        by_key[tuple(row[k] for k in key)] = row
    return list(by_key.values())


def with_defaults(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill the model's Python-side defaults: COPY and a multi-row VALUES need every column
    spelt out, and the tables have no server defaults."""
    fill: dict[str, Any] = {}
    for column in table.columns:
        if column.primary_key or column.name in rows[0] or column.default is None:
            continue
        default: Any = column.default
        fill[column.name] = default.arg(None) if default.is_callable else default.arg
    if not fill:
        return rows
    return [{**fill, **row} for row in rows]


def upsert(
    session: Session,
    model: type[SQLModel] | Table,
    rows: Sequence[dict[str, Any]],
    *,
    conflict: Sequence[str],
    insert_only: Sequence[str] = (),
    immutable: bool = False,
    copy_threshold: int = COPY_THRESHOLD,
) -> Written:
    """Insert `rows` or update them on `conflict`; columns in `insert_only` keep their first
    value (e.g. first_seen_at). ``immutable`` rows (whose key hashes their whole content, such
    as sign-in events) are never rewritten: DO NOTHING spares Postgres a dead tuple per
    re-ingested row. All rows must have the same keys. Returns how many distinct rows
    were written and, where the database can say, how many of them were new (drivers report no
    usable rowcount for multi-row VALUES, so RETURNING tells: on Postgres ``xmax = 0`` marks a
    row this statement inserted rather than updated)."""
    if not rows:
        return Written(0, 0)
    table = _table(model)
    rows = with_defaults(table, dedupe(rows, conflict))
    columns = list(rows[0].keys())
    updates = [] if immutable else [
        c for c in columns if c not in conflict and c not in insert_only
    ]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and len(rows) >= copy_threshold:
        return _copy_upsert(session, table, rows, columns, conflict, updates)
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # Bind parameters per statement are capped (SQLite 32766, Postgres 65535).
    batch = max(1, 30000 // max(1, len(columns)))
    inserted: int | None = 0
    for start in range(0, len(rows), batch):
        stmt = insert(table).values(rows[start : start + batch])
        if updates:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(conflict),
                set_={c: stmt.excluded[c] for c in updates},
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict))
        if dialect == "postgresql":
            flags = session.connection().execute(stmt.returning(literal_column("xmax = 0")))
            new = sum(1 for (flag,) in flags if flag)
        elif not updates:  # SQLite returns only the rows DO NOTHING actually inserted
            new = len(session.connection().execute(stmt.returning(literal_column("1"))).all())
        else:
            session.connection().execute(stmt)
            inserted = None
            continue
        if inserted is not None:
            inserted += new
    return Written(len(rows), inserted)


def copy_to_temp(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], columns: list[str]
) -> str:
    """COPY `rows` into a new temporary table shaped like `table` (Postgres only); returns its
    name. The caller drops it: ON COMMIT DROP alone keeps the name busy until commit."""
    tmp = f"tmp_{table.name}_{uuid.uuid4().hex[:12]}"
    cols = ", ".join(f'"{c}"' for c in columns)
    json_cols = {c.name for c in table.columns if isinstance(c.type, JSON)}
    session.execute(
        text(
            f"CREATE TEMPORARY TABLE {tmp} ON COMMIT DROP AS "
            f'SELECT {cols} FROM "{table.name}" WITH NO DATA'
        )
    )
    raw = session.connection().connection.driver_connection
    with (
        raw.cursor() as cur,  # type: ignore[union-attr]
        cur.copy(f"COPY {tmp} ({cols}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(
                [Json(row[c]) if c in json_cols and row[c] is not None else row[c]
                 for c in columns]
            )
    return tmp


def _copy_upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    columns: list[str],
    conflict: Sequence[str],
    updates: list[str],
) -> Written:
    tmp = copy_to_temp(session, table, rows, columns)
    cols = ", ".join(f'"{c}"' for c in columns)
    if updates:
        sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in updates)
        action = f"DO UPDATE SET {sets}"
    else:
        action = "DO NOTHING"
    keys = ", ".join(f'"{c}"' for c in conflict)
    flags = session.connection().execute(
        text(
            f'INSERT INTO "{table.name}" ({cols}) SELECT {cols} FROM {tmp} '
            f"ON CONFLICT ({keys}) {action} RETURNING (xmax = 0)"
        )
    )
    inserted = sum(1 for (flag,) in flags if flag)
    # ON COMMIT DROP alone would keep the name busy for the rest of this transaction.
    session.execute(text(f"DROP TABLE {tmp}"))
    return Written(len(rows), inserted)
