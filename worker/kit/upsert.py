"""The one bulk write path: upsert one page of rows on a natural key, in one statement batch.

Postgres, big pages: COPY into a staging table kept for the session (temporary, `ON COMMIT
DELETE ROWS`: created once per connection, not once per page), then one `INSERT ... SELECT ...
ON CONFLICT` that also empties it. The COPY is binary when every value of the page is of the
Python type the column's binary format takes (UUID, str, aware datetime, int, ..., and for a
JSON column anything `json.dumps` takes): psycopg's text format spends several microseconds a
row turning UUIDs and datetimes into text, the largest share of the worker's CPU per sign-in
event and per user (bench/RESULTS.md). Any other page goes as text, as before. Rows the
caller knows to be new (``expect_new``: a backfill's empty window) are COPYed into the table
itself, under a savepoint that a stored row rolls back to; a stream of such pages through one
COPY held open across them (`Appending`). Small pages, and SQLite (the demo): a multi-row
`INSERT ... ON CONFLICT`. Every path gives the same rows.

Two modes of `DO UPDATE`:
- plain: a stored row takes every column but the key and `insert_only`;
- classify (``compare`` given): a stored row is rewritten only when one of the ``compare``
  columns differs; otherwise only its ``touch`` columns move (e.g. `last_seen_at`). One
  statement, one index probe per row, and the counts come back from it: on Postgres `RETURNING
  (xmax = 0)` marks an inserted row, and a subquery in `RETURNING`, which reads the statement's
  snapshot and so the row as it was before this statement, tells a changed row from a touched
  one. No read of the stored rows first (an `IN (page of keys)` lookup is planned as a scan of
  the whole source on tables without statistics, bench/RESULTS.md finding 3). SQLite, the
  demo's small database, reads the page's stored rows back to count.

`sync` is the classify mode for a long pull that reads the table's keys and compared values
once (`read_known`): a row stored as the page has it is only touched, by a narrow UPDATE that
sends its key and compared values and re-checks them (a row rewritten since the read goes to
the full write); the others go to an upsert that rewrites only changed rows and so counts
without the probe. Same rows and counts as `upsert`, with most of a no-change pull's wide rows
never built nor sent.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import operator
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg.errors import UniqueViolation
from psycopg.postgres import types as pg_types
from psycopg.types.json import Json
from sqlalchemy import JSON, Table, literal_column, text, tuple_
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, SQLModel

from worker.kit import sql

# Below this many rows a multi-row INSERT is as fast as COPY.
# A Zoom page holds at most 300 rows: above 100 the COPY path measured 2.5x faster for
# activity and 5x for a first aggregation (bench/RESULTS.md, finding 1).
COPY_THRESHOLD = 100

# Column types a binary COPY sends, by type OID: the one Python type whose binary dumper fits
# the column (and never surprises: a bool is not an int here, a datetime not a date).
_BINARY_COPY: dict[int, type] = {pg_types.get(name).oid: kind for name, kind in (  # type: ignore[union-attr]
    ("uuid", uuid.UUID), ("text", str), ("varchar", str), ("timestamptz", datetime),
    ("int2", int), ("int4", int), ("int8", int), ("bool", bool), ("date", date))}
_TIMESTAMPTZ = pg_types.get("timestamptz").oid  # type: ignore[union-attr]
# A json column's binary format is its text: psycopg's dumper for it encodes any value (the
# same `json.dumps` as the text path's `Json` wrapper), so a page with JSON goes binary too.
_JSON_OIDS = frozenset(pg_types.get(name).oid for name in ("json", "jsonb"))  # type: ignore[union-attr]


@dataclass(frozen=True)
class Written:
    """What one upsert did. ``inserted`` is None where the database cannot tell (SQLite's
    plain ON CONFLICT DO UPDATE); otherwise the rest of ``rows`` were updated (DO UPDATE) or
    already there and left alone (DO NOTHING, immutable rows such as sign-in events).
    ``updated`` is known in classify mode only: the stored rows whose content changed (the
    others were ``unchanged``, at most touched)."""

    rows: int
    inserted: int | None
    updated: int | None = None

    @property
    def existing(self) -> int | None:
        return None if self.inserted is None else self.rows - self.inserted

    @property
    def unchanged(self) -> int | None:
        if self.inserted is None or self.updated is None:
            return None
        return self.rows - self.inserted - self.updated


def _table(model: type[SQLModel] | Table) -> Table:
    if isinstance(model, Table):
        return model
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def dedupe(rows: Iterable[dict[str, Any]], key: Sequence[str]) -> list[dict[str, Any]]:
    """Last row wins per key: ON CONFLICT refuses to touch one row twice in a statement, and
    Zoom pages do repeat items (a participant who rejoined within the same second)."""
    of = operator.itemgetter(*key)
    return list({of(row): row for row in rows}.values())


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


@dataclass(frozen=True)
class _Plan:
    """The SQL of one kind of upsert (table, columns, mode, dialect), built once."""

    table: Table
    columns: tuple[str, ...]
    conflict: tuple[str, ...]
    compare: tuple[str, ...] | None
    sets: dict[str, str]  # column -> SQL of its new value; empty: DO NOTHING
    where: str | None  # the DO UPDATE's condition (classify mode)
    changed_before: str | None  # RETURNING subquery: did the stored row differ (Postgres)
    json_at: tuple[int, ...]  # where in `columns` the JSON ones are (COPY wraps their values)

    @property
    def action(self) -> str:
        if not self.sets:
            return "DO NOTHING"
        sets = ", ".join(f'"{c}" = {v}' for c, v in self.sets.items())
        return f"DO UPDATE SET {sets}" + (f" WHERE {self.where}" if self.where else "")

    @property
    def returning(self) -> tuple[str, ...]:
        """Postgres: was the row inserted, and (classify mode) did the stored row differ."""
        return ("(xmax = 0)", *((self.changed_before,) if self.changed_before else ()))

    def on_conflict(self, stmt: Any) -> Any:
        """The plan's ON CONFLICT on a SQLAlchemy insert of the dialect."""
        if not self.sets:
            return stmt.on_conflict_do_nothing(index_elements=list(self.conflict))
        return stmt.on_conflict_do_update(
            index_elements=list(self.conflict),
            set_={c: literal_column(v) for c, v in self.sets.items()},
            where=text(self.where) if self.where else None,
        )


@functools.lru_cache(maxsize=256)
def _plan(
    table: Table,
    columns: tuple[str, ...],
    conflict: tuple[str, ...],
    insert_only: tuple[str, ...],
    immutable: bool,
    compare: tuple[str, ...] | None,
    touch: tuple[str, ...],
    dialect: str,
) -> _Plan:
    name = f'"{table.name}"'
    json_cols = {c.name for c in table.columns if isinstance(c.type, JSON)}
    distinct = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"

    def differs(a: str, b: str, column: str) -> str:
        if column in json_cols:  # Postgres' json has no equality operator: compare the text
            return f'CAST({a}."{column}" AS TEXT) {distinct} CAST({b}."{column}" AS TEXT)'
        return f'{a}."{column}" {distinct} {b}."{column}"'

    def any_of(terms: list[str]) -> str:
        return "(" + " OR ".join(terms) + ")" if terms else "(1 = 0)"

    updates = [] if immutable else [
        c for c in columns if c not in conflict and c not in insert_only
    ]
    sets: dict[str, str] = {}
    where = changed_before = None
    if compare is None:
        sets = {c: f'excluded."{c}"' for c in updates}
    elif updates and not any(c in updates for c in touch):
        # Nothing to touch: only a changed row is rewritten (and returned), so every stored
        # row the statement returns differed, without a probe (`sync` touches the others).
        sets = {c: f'excluded."{c}"' for c in updates}
        where = any_of([differs(name, "excluded", c) for c in compare])
        changed_before = "TRUE"
    elif updates:
        changed = any_of([differs(name, "excluded", c) for c in compare])
        sets = {c: f'excluded."{c}"' if c in touch
                else f'CASE WHEN {changed} THEN excluded."{c}" ELSE {name}."{c}" END'
                for c in updates}
        where = any_of([changed, *(differs(name, "excluded", c) for c in touch if c in updates)])
        keys = " AND ".join(f'o."{k}" = {name}."{k}"' for k in conflict)
        changed_before = (f"(SELECT {any_of([differs('o', name, c) for c in compare])} "
                          f"FROM {name} AS o WHERE {keys})")
    json_at = tuple(i for i, c in enumerate(columns) if c in json_cols)
    return _Plan(table, columns, conflict, compare, sets, where, changed_before, json_at)


def upsert(
    session: Session,
    model: type[SQLModel] | Table,
    rows: Sequence[dict[str, Any]],
    *,
    conflict: Sequence[str],
    insert_only: Sequence[str] = (),
    immutable: bool = False,
    compare: Sequence[str] | None = None,
    touch: Sequence[str] = (),
    copy_threshold: int = COPY_THRESHOLD,
    expect_new: bool = False,
) -> Written:
    """Insert `rows` or update them on `conflict`; columns in `insert_only` keep their first
    value (e.g. first_seen_at). ``immutable`` rows (whose key hashes their whole content, such
    as sign-in events) are never rewritten: DO NOTHING spares Postgres a dead tuple per
    re-ingested row. ``compare`` (classify mode): a stored row is rewritten only when one of
    these columns differs, else only its ``touch`` columns are; the result then counts
    inserted, updated (changed) and unchanged rows on every database. All rows must have the
    same keys. Returns how many distinct rows were written and, where the database can say,
    how many of them were new (DO NOTHING: the statement's rowcount; DO UPDATE: RETURNING
    tells, as its rowcount counts the updated rows too).

    ``expect_new`` (Postgres, the COPY path): the caller knows none of them to be stored (a
    backfill's window that held nothing when its chunk began, a source's first pull of a
    table). The page is COPYed straight into the table, without the staging table, the
    `INSERT ... ON CONFLICT` and its `RETURNING`: every row is new, in every mode. Should one
    be stored after all (a row Zoom repeated on two pages, a webhook's), the COPY is rolled
    back to its savepoint and the page takes the usual path. Same rows and counts."""
    classify = compare is not None
    if not rows:
        return Written(0, 0, 0 if classify else None)
    table = _table(model)
    rows = with_defaults(table, dedupe(rows, conflict))
    dialect = sql.dialect(session)
    plan = _plan(table, tuple(rows[0]), tuple(conflict), tuple(insert_only), immutable,
                 None if compare is None else tuple(compare), tuple(touch), dialect)
    if dialect != "postgresql":
        return _sqlite_upsert(session, plan, rows)
    copying = len(rows) >= copy_threshold
    if expect_new and copying:
        appending = Appending(session, table, conflict=conflict, insert_only=insert_only,
                              immutable=immutable, compare=compare, touch=touch,
                              one_page=True)
        appending.write(rows)
        return appending.end()
    write = _copy_upsert if copying else _values_upsert
    if not plan.sets:
        # DO NOTHING writes only new rows: the statement's rowcount counts them, without a
        # row sent back per new event (as RETURNING did, a visible share of ingestion).
        inserted, _ = write(session, plan, rows, returning=False)
        return Written(len(rows), inserted, 0 if classify else None)
    _, flags = write(session, plan, rows, returning=True)
    inserted = sum(1 for flag in flags if flag[0])
    if not classify:
        return Written(len(rows), inserted)
    # A returned row that was not inserted changed, or was only touched; a row not returned
    # was already as the page has it. NULL (no row before: a concurrent insert) is a change.
    updated = sum(1 for flag in flags if not flag[0] and flag[1] is not False)
    return Written(len(rows), inserted, updated)


def _staging(session: Session, table: Table, columns: Sequence[str]) -> str:
    """The session's temporary table for COPYing pages of `columns` of `table` (Postgres).
    ON COMMIT DELETE ROWS: it outlives transactions, empty; a rolled-back transaction that
    created it takes it away, so its existence is asked again in each transaction."""
    cols = ", ".join(f'"{c}"' for c in columns)
    digest = hashlib.sha256(cols.encode()).hexdigest()[:10]
    name = f"stage_{table.name[:40]}_{digest}"
    conn = session.connection()
    # Asked once per transaction: within one, a table that was there stays there.
    seen: dict[str, Any] = session.info.setdefault("ai_staging", {})
    transaction = session.get_transaction()
    if seen.get(name) is transaction:
        return name
    if conn.execute(text(f"SELECT to_regclass('pg_temp.{name}')")).scalar() is None:
        conn.execute(text(
            f"CREATE TEMPORARY TABLE {name} ON COMMIT DELETE ROWS AS "
            f'SELECT {cols} FROM "{table.name}" WITH NO DATA'))
    seen[name] = transaction
    return name


def _values_upsert(session: Session, plan: _Plan, rows: list[dict[str, Any]], *,
                   returning: bool) -> tuple[int, list[Any]]:
    """Multi-row INSERTs (Postgres): how many rows were written, and (``returning``) what
    `plan.returning` gives of each."""
    flags: list[Any] = []
    count = 0
    # Bind parameters per statement are capped (Postgres 65535).
    batch = max(1, 30000 // max(1, len(plan.columns)))
    for start in range(0, len(rows), batch):
        stmt = plan.on_conflict(sql.insert(session, plan.table).values(rows[start:start + batch]))
        if returning:
            flags.extend(session.connection().execute(
                stmt.returning(*(literal_column(r) for r in plan.returning))).all())
        else:
            # SQLAlchemy reads an INSERT's rowcount only when asked to.
            result: Any = session.connection().execute(
                stmt.execution_options(preserve_rowcount=True))
            count += int(result.rowcount)
    return (len(flags) if returning else count), flags


def _copy_values(plan: _Plan) -> Callable[[dict[str, Any]], Sequence[Any]]:
    """A row's values in `plan.columns` order, as a binary COPY takes them but for JSON
    columns' None (`_json_values`)."""
    columns = plan.columns
    if len(columns) < 2:
        return lambda row: [row[columns[0]]]
    # One C call per row: every field of every event and user passes here.
    return operator.itemgetter(*columns)


def _json_values(plan: _Plan, values: list[Sequence[Any]], binary: bool
                 ) -> list[Sequence[Any]]:
    """Rows of `_copy_values` with their JSON columns' values as the VALUES path stores them:
    None as JSON null (SQLAlchemy's `JSON`, ``none_as_null`` off), not SQL NULL; in a text COPY
    every value wrapped (psycopg would send a list as a Postgres array)."""
    json_at = plan.json_at
    if not json_at or (binary and all(row[i] is not None for row in values for i in json_at)):
        return values
    wrapped: list[Sequence[Any]] = []
    for row in values:
        values_of_row = list(row)
        for i in json_at:
            if not binary or values_of_row[i] is None:
                values_of_row[i] = Json(values_of_row[i])
        wrapped.append(values_of_row)
    return wrapped


def _column_types(session: Session, table: Table) -> dict[str, tuple[int, str]]:
    """Each column of `table` as the database types it: (type OID, SQL type). Asked once a
    session."""
    known: dict[str, dict[str, tuple[int, str]]] = session.info.setdefault(
        "ai_column_types", {})
    if table.name not in known:
        known[table.name] = {name: (int(oid), sql_type) for name, oid, sql_type in
                             session.connection().execute(text(
            "SELECT attname, atttypid, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped"),
            {"t": f'"{table.name}"'})}
    return known[table.name]


def _binary_types(oids: list[int], columns: list[tuple[Any, ...]]) -> list[int] | None:
    """`oids`, when a binary COPY can send every value of `columns` (a page, column by column):
    each column of a type in `_BINARY_COPY`, each value None or of exactly its Python type, each
    timestamp aware; a JSON column takes any value. None: send the page as text (arrays, a
    str for a uuid, ...)."""
    kinds = [_BINARY_COPY.get(oid) for oid in oids]
    if any(kind is None and oid not in _JSON_OIDS for oid, kind in zip(oids, kinds, strict=True)):
        return None
    for oid, kind, column in zip(oids, kinds, columns, strict=True):
        if kind is None:
            continue  # JSON: whatever `json.dumps` takes, as on the text path
        found = set(map(type, column))
        found.discard(type(None))
        if found - {kind}:
            return None
        if oid == _TIMESTAMPTZ and None in set(map(operator.attrgetter("tzinfo"),
                                                   filter(None, column))):
            return None  # a naive datetime: text COPY lets the server place it, as before
    return oids


def _copy_upsert(session: Session, plan: _Plan, rows: Sequence[dict[str, Any]], *,
                 returning: bool) -> tuple[int, list[Any]]:
    """COPY into the session's staging table, then one INSERT ... SELECT: how many rows were
    written, and (``returning``) what `plan.returning` gives of each.

    A column that holds the same object in every row of the page (the tenant and the source)
    is bound once in the INSERT instead of being sent, and converted, with every row."""
    values = list(map(_copy_values(plan), rows))
    by_column = list(zip(*values, strict=True))
    constant = {i for i, column in enumerate(by_column)
                if all(map(operator.is_, column, itertools.repeat(column[0])))}
    if len(constant) == len(plan.columns):  # one row: the staging table needs a column
        constant.discard(plan.columns.index(plan.conflict[-1]))
    sent = [i for i in range(len(plan.columns)) if i not in constant]
    staged = [plan.columns[i] for i in sent]
    stage = _staging(session, plan.table, staged)
    types = _column_types(session, plan.table)
    binary = _binary_types([types[c][0] for c in staged], [by_column[i] for i in sent])
    values = _json_values(plan, values, binary is not None)
    if constant:
        pick = operator.itemgetter(*sent)
        values = [(v,) for v in map(pick, values)] if len(sent) == 1 else list(map(pick, values))
    cols = ", ".join(f'"{c}"' for c in plan.columns)
    staged_cols = ", ".join(f'"{c}"' for c in staged)
    select = ", ".join(f"CAST(%s AS {types[c][1]})" if i in constant else f'"{c}"'
                       for i, c in enumerate(plan.columns))
    keys = ", ".join(f'"{c}"' for c in plan.conflict)
    # The staged rows are deleted by the statement that reads them: several pages may share a
    # transaction (the commit would empty the table only at its end).
    insert = (f"WITH staged AS (DELETE FROM {stage} RETURNING {staged_cols}) "
              f'INSERT INTO "{plan.table.name}" ({cols}) SELECT {select} FROM staged '
              f"ON CONFLICT ({keys}) {plan.action}")
    if returning:
        insert += f" RETURNING {', '.join(plan.returning)}"
    params = [Json(by_column[i][0]) if i in plan.json_at else by_column[i][0]
              for i in sorted(constant)]
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        _copy_into(cur, stage, staged_cols, values, binary)
        cur.execute(insert, params)
        if returning:
            flags = cur.fetchall()
            return len(flags), flags
        return max(cur.rowcount, 0), []


@contextlib.contextmanager
def _copy_from(cur: Any, table: str, columns: str, binary: list[int] | None) -> Iterator[Any]:
    """psycopg's COPY of rows of `columns` (a SQL list) into `table`, binary when typed."""
    fmt = " (FORMAT BINARY)" if binary else ""
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN{fmt}") as copy:
        if binary:
            copy.set_types(binary)
        yield copy


def _copy_into(cur: Any, table: str, columns: str, values: Iterable[Sequence[Any]],
               binary: list[int] | None) -> None:
    """COPY `values` (rows of `columns`, a SQL list) into `table`; binary when typed."""
    with _copy_from(cur, table, columns, binary) as copy:
        for row in values:
            copy.write_row(row)


class Appending:
    """Pages of new rows COPYed straight into ``model``'s table through one COPY statement held
    open across them (`upsert`'s ``expect_new`` for a chunk's stream of pages, Postgres only).

    Why: with a COPY per page the worker and its backend take turns, each waiting while the
    other works on the page; with the COPY left open, the backend stores page n while the
    worker parses and sends page n+1, as a raw COPY does (bench/RESULTS.md, issue 15). While
    it is open the session's connection can run nothing else: any other statement of the
    session, and its commit, close it first (session events). `end` closes it and counts the
    rows written since the last `end`. Should one of them be stored already (Zoom
    repeating an item on the next page, a webhook's row) or a page not fit the open COPY's
    format, the pages since the savepoint the COPY opened under are undone and written by
    `upsert` instead, on its ``ON CONFLICT`` path: the same rows and counts either way."""

    def __init__(self, session: Session, model: type[SQLModel] | Table, *,
                 conflict: Sequence[str], insert_only: Sequence[str] = (),
                 immutable: bool = False, compare: Sequence[str] | None = None,
                 touch: Sequence[str] = (), one_page: bool = False) -> None:
        self._session, self._table = session, _table(model)
        self._conflict, self._immutable = tuple(conflict), immutable
        # `upsert`'s, for the rows that fall back to it (the same counts: classify mode's too).
        self._options: dict[str, Any] = {"insert_only": insert_only, "compare": compare,
                                         "touch": touch}
        self._none = Written(0, 0, 0 if compare is not None else None)
        self._rows: list[dict[str, Any]] = []  # since the savepoint, for the fallback
        self._pending = self._none  # what was written since `end`, COPY closed
        # Ended right after its one `write` (`upsert`'s own use): nothing to watch for.
        self._watched: Any = None if not one_page else False
        self._cursor: Any = None
        self._copying: Any = None  # psycopg's COPY context while the COPY is open
        self._copy: Any = None
        self._format: list[int] | None = None

    @property
    def open(self) -> bool:
        return self._copy is not None

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Send ``rows`` (the same keys in each) into the COPY, opening it if closed."""
        if not rows:
            return
        rows = with_defaults(self._table, dedupe(rows, self._conflict))
        plan = _plan(self._table, tuple(rows[0]), self._conflict, (), self._immutable, None,
                     (), "postgresql")
        values = list(map(_copy_values(plan), rows))
        types = _column_types(self._session, self._table) if self._copy is None else None
        if types is not None:
            self._format = _binary_types([types[c][0] for c in plan.columns],
                                         list(zip(*values, strict=True)))
            self._start(plan)
        elif self._format is not None and _binary_types(
                self._format, list(zip(*values, strict=True))) is None:
            # Not for the open binary COPY (a naive time, say): the pages so far take the
            # usual path with this one.
            self._abandon(rows)
            return
        values = _json_values(plan, values, self._format is not None)
        try:
            for row in values:
                self._copy.write_row(row)
        except Exception:  # a value the format cannot carry: the usual path instead
            self._abandon(rows)
            return
        self._rows.extend(rows)

    def end(self) -> Written:
        """Close the COPY: what the rows written since the last `end` did (all new, unless
        some fell back)."""
        self._close()
        done, self._pending = self._pending, self._none
        return done

    def _close(self) -> None:
        """End the open COPY, its counts kept for `end`. Also run, through the session's
        events, before any other statement of the session and before its commit: a caller
        that forgets `end` gets its rows written, not a connection that waits forever."""
        if self._copy is None:
            return
        rows, cursor, copying = self._detach()
        try:
            copying.__exit__(None, None, None)
        except UniqueViolation:
            # The rows the COPY had inserted are dead tuples now; rare (a repeated item).
            self._undo(cursor, rows)
            return
        cursor.execute("RELEASE SAVEPOINT ai_append")
        cursor.close()
        self._pending = _sum(self._pending, Written(len(rows), len(rows),
                                                    self._pending.updated))

    def abort(self) -> None:
        """Give up the open COPY (the chunk failed): the session's transaction is then to be
        rolled back, as after any failed statement."""
        if self._copy is not None:
            _, cursor, copying = self._detach()
            with contextlib.suppress(Exception):
                copying.__exit__(RuntimeError, RuntimeError("aborted"), None)
            cursor.close()

    def _detach(self) -> tuple[list[dict[str, Any]], Any, Any]:
        """(rows since the savepoint, cursor, COPY context) of the open COPY, now closed here."""
        detached = self._rows, self._cursor, self._copying
        self._rows, self._copy, self._copying, self._cursor = [], None, None, None
        return detached

    def _undo(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        """Back to the COPY's savepoint; ``rows`` written by `upsert` (counted at `end`)."""
        cursor.execute("ROLLBACK TO SAVEPOINT ai_append")
        cursor.execute("RELEASE SAVEPOINT ai_append")
        cursor.close()
        self._pending = _sum(self._pending, self._upsert(rows))

    def _start(self, plan: _Plan) -> None:
        connection = self._session.connection()
        if self._watched is not False and self._watched is not connection:
            # Before any statement or commit of the session: the COPY ends first. (A commit
            # hands the session a new connection: watched as the COPY opens on it.)
            if self._watched is None:
                sa_event.listen(self._session, "before_commit", lambda _s: self._close())
            sa_event.listen(connection, "before_cursor_execute", lambda *_a: self._close())
            self._watched = connection
        raw = connection.connection.driver_connection
        self._cursor = raw.cursor()  # type: ignore[union-attr]
        self._cursor.execute("SAVEPOINT ai_append")
        cols = ", ".join(f'"{c}"' for c in plan.columns)
        self._copying = _copy_from(self._cursor, f'"{self._table.name}"', cols, self._format)
        self._copy = self._copying.__enter__()

    def _abandon(self, rows: list[dict[str, Any]]) -> None:
        """Undo the open COPY to its savepoint and write its rows and ``rows`` by `upsert`
        (counted at the next `end`); the next page opens a COPY again."""
        sent, cursor, copying = self._detach()
        with contextlib.suppress(Exception):
            copying.__exit__(RuntimeError, RuntimeError("abandoned"), None)
        self._undo(cursor, sent + rows)

    def _upsert(self, rows: list[dict[str, Any]]) -> Written:
        return upsert(self._session, self._table, rows, conflict=self._conflict,
                      immutable=self._immutable, **self._options)


def _sum(a: Written, b: Written) -> Written:
    inserted = None if a.inserted is None or b.inserted is None else a.inserted + b.inserted
    updated = None if a.updated is None or b.updated is None else a.updated + b.updated
    return Written(a.rows + b.rows, inserted, updated)


def _sqlite_upsert(session: Session, plan: _Plan, rows: list[dict[str, Any]]) -> Written:
    """SQLite (the demo): the same ON CONFLICT; counts from what RETURNING or a read-back of the
    page's stored rows can tell."""
    before = _stored(session, plan, rows) if plan.compare is not None else None
    # Bind parameters per statement are capped (SQLite 32766).
    batch = max(1, 30000 // max(1, len(plan.columns)))
    inserted = 0
    for start in range(0, len(rows), batch):
        stmt = plan.on_conflict(sql.insert(session, plan.table).values(rows[start:start + batch]))
        if plan.sets:
            session.connection().execute(stmt)
        else:  # SQLite returns only the rows DO NOTHING actually inserted
            inserted += len(session.connection().execute(
                stmt.returning(literal_column("1"))).all())
    if before is None:
        return Written(len(rows), inserted if not plan.sets else None)
    compare = plan.compare or ()
    inserted = updated = 0
    for row in rows:
        old = before.get(tuple(row[k] for k in plan.conflict))
        if old is None:
            inserted += 1
        elif any(old[c] != row.get(c) for c in compare):
            updated += 1
    return Written(len(rows), inserted, updated)


def _stored(session: Session, plan: _Plan, rows: list[dict[str, Any]]
            ) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The stored `compare` columns of the page's keys (SQLite only: small databases)."""
    table, conflict = plan.table, plan.conflict
    wanted = [*conflict, *(plan.compare or ())]
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for start in range(0, len(rows), 500):
        keys = {tuple(r[k] for k in conflict) for r in rows[start:start + 500]}
        query = table.select().with_only_columns(*(table.c[c] for c in wanted)).where(
            tuple_(*(table.c[k] for k in conflict)).in_(list(keys)))
        for found in session.connection().execute(query).mappings():
            out[tuple(found[k] for k in conflict)] = dict(found)
    return out



# -- classify mode steered by a read of the stored rows (`sync`) ---------------------------


def _values_of(columns: Sequence[str]) -> Any:
    """A row's values of `columns`, always as a tuple (itemgetter gives a scalar for one)."""
    if len(columns) == 1:
        (only,) = columns
        return lambda row: (row[only],)
    return operator.itemgetter(*columns)


class Known:
    """What a table held when `read_known` read it: for each stored row matching `where`, a
    fingerprint (a hash) of its key and one of its other compared values (the columns in
    `where` are left out of both: every row shares them). `split` keeps it as a write leaves
    the rows.

    Only a hint: a write it steers checks the stored row itself (`touch_unchanged`'s
    condition, the upsert's `ON CONFLICT`), so a stale or colliding entry costs a statement,
    never a wrong row or count. Hashes, not values: a few dozen bytes per row in memory."""

    def __init__(self, conflict: Sequence[str], compare: Sequence[str],
                 where: Mapping[str, Any]) -> None:
        self.key = tuple(c for c in conflict if c not in where)
        self.values = tuple(c for c in compare if c not in where)
        self.where = dict(where)
        self.prints: dict[int, int] = {}
        # A write met stored rows the read did not see (marked deleted, a webhook's): the
        # table is not one to COPY straight into any more (`sync`).
        self.met_unread = False
        self._key, self._values = _values_of(self.key), _values_of(self.values)

    def __len__(self) -> int:
        return len(self.prints)

    def split(self, rows: Iterable[dict[str, Any]]
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(rows whose key was stored with these values, the others); afterwards each row's
        key is known with its values, as the write of these rows stores them. The rows carry
        the key and values columns; ``where``'s columns are taken to be as read."""
        prints, key, values = self.prints, self._key, self._values
        same: list[dict[str, Any]] = []
        rest: list[dict[str, Any]] = []
        for row in rows:
            k, v = hash(key(row)), hash(values(row))
            (same if prints.get(k) == v else rest).append(row)
            prints[k] = v
        return same, rest


def read_known(session: Session, model: type[SQLModel] | Table, *, conflict: Sequence[str],
               compare: Sequence[str], where: Mapping[str, Any]) -> Known:
    """The fingerprints of the stored rows whose columns equal `where` (None: IS NULL), in one
    read (`Known`)."""
    table = _table(model)
    known = Known(conflict, compare, where)
    query = table.select().with_only_columns(
        *(table.c[c] for c in (*known.key, *known.values))
    ).where(*(table.c[c].is_(None) if v is None else table.c[c] == v for c, v in where.items()))
    n = len(known.key)
    prints = known.prints
    for row in session.connection().execute(query):
        prints[hash(tuple(row[:n]))] = hash(tuple(row[n:]))
    return known


@functools.lru_cache(maxsize=64)
def _touch_sql(table: Table, conflict: tuple[str, ...], compare: tuple[str, ...],
               touch: tuple[str, ...], fixed: tuple[str, ...], null: tuple[str, ...]) -> str:
    """`touch_unchanged`'s statement. The rows' own columns come as arrays (`:a0`...), those
    ``fixed`` for all as one value each (`:f0`...; ``null``: fixed as NULL; `:n` rows). The
    UPDATE joins them on the key; the SELECT returns the keys it did not move, usually none.

    A fixed key column (the source) is joined as a column too, an array of `:n` copies: as a
    constant, Postgres plans it by that value's statistics, and for a source it has none of
    (never analyzed, or analyzed before the source's first pull) it scanned every row of the
    source per page, through any index that starts with it (up to a second a page). As a
    column, the only index both key columns fit is the unique one: a probe per row."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    sent = [c for c in (*conflict, *compare) if c not in fixed]
    arrays = {c: f"CAST(:a{i} AS {table.c[c].type.compile(dialect=dialect)}[])"
              for i, c in enumerate(sent)}
    at = {c: f"k.a{i}" for i, c in enumerate(sent)}
    at.update({c: f":f{i}" for i, c in enumerate(fixed)})
    for c in conflict:
        if c in fixed:
            i = fixed.index(c)
            arrays[c] = (f"array_fill(CAST(:f{i} AS {table.c[c].type.compile(dialect=dialect)}),"
                         " ARRAY[CAST(:n AS integer)])")
            at[c] = f"k.f{i}"
    joined = [*(c for c in conflict if c in fixed), *sent]
    keys = [c for c in conflict if c not in fixed]

    def rows_of(columns: list[str]) -> str:
        return (f"unnest({', '.join(arrays[c] for c in columns)}) "
                f"AS k({', '.join(at[c][2:] for c in columns)})")

    match = [*(f't."{c}" = {at[c]}' for c in conflict),
             *(f't."{c}" IS NULL' if c in null else f't."{c}" IS NOT DISTINCT FROM {at[c]}'
               for c in compare)]
    sets = ", ".join(f'"{c}" = {at[c]}' for c in touch)
    returning = ", ".join(f't."{c}"' for c in keys)
    moved = " AND ".join(f'm."{c}" = {at[c]}' for c in keys)
    return (f'WITH moved AS (UPDATE "{table.name}" AS t SET {sets} FROM {rows_of(joined)} '
            f"WHERE {' AND '.join(match)} RETURNING {returning}) "
            f"SELECT {', '.join(at[c] for c in keys)} FROM {rows_of(keys)} "
            f"WHERE NOT EXISTS (SELECT FROM moved AS m WHERE {moved})")


def _array(values: list[Any]) -> Any:
    """An array parameter: for strings, as Postgres' array text when no element needs escaping
    (a twentieth of the CPU of the driver's element-by-element list adaptation); otherwise the
    list, for the driver to adapt."""
    if all(type(v) is str for v in values):
        whole = "".join(values)
        if '"' not in whole and "\\" not in whole:
            return '{"' + '","'.join(values) + '"}'
    return values


def touch_unchanged(session: Session, model: type[SQLModel] | Table,
                    rows: Sequence[dict[str, Any]], *, fixed: Mapping[str, Any],
                    conflict: Sequence[str], compare: Sequence[str], touch: Sequence[str]
                    ) -> list[dict[str, Any]]:
    """For each row (with ``fixed``'s columns) whose stored twin still has these `compare`
    values, move only the `touch` columns, to the row's values; returns the rows it did not
    find so (for the full write). A row rewritten meanwhile (a webhook clears `content_hash`)
    no longer matches: the UPDATE re-checks its condition on the newest version of a row it
    had to wait for. Postgres; narrow: the key and the compared values go, no wide row."""
    if not rows:
        return []
    table = _table(model)
    for c in compare:
        if isinstance(table.c[c].type, JSON):
            raise ValueError(f"touch_unchanged compares {c}, a JSON column")
    names = tuple(fixed)
    null = tuple(c for c in names if fixed[c] is None)
    statement = _touch_sql(table, tuple(conflict), tuple(compare), tuple(touch), names, null)
    sent = [c for c in (*conflict, *compare) if c not in fixed]
    params = {f"a{i}": _array([row[c] for row in rows]) for i, c in enumerate(sent)}
    params.update({f"f{i}": fixed[c] for i, c in enumerate(names) if c not in null})
    params["n"] = len(rows)
    missed = session.connection().execute(text(statement), params).all()
    if not missed:
        return []
    key = _values_of([c for c in conflict if c not in fixed])
    left = {tuple(found) for found in missed}
    return [row for row in rows if key(row) in left]


def sync(
    session: Session,
    model: type[SQLModel] | Table,
    rows: Sequence[dict[str, Any]],
    *,
    fixed: Mapping[str, Any],
    conflict: Sequence[str],
    compare: Sequence[str],
    touch: Sequence[str],
    known: Known | None,
    expand: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    insert_only: Sequence[str] = (),
    copy_threshold: int = COPY_THRESHOLD,
) -> Written:
    """`upsert`'s classify mode for ``rows`` with ``fixed``'s columns, steered by what the
    table held (``known``, read once per pull): the same rows and counts, cheaper when most
    rows are unchanged.

    - rows stored with the same `compare` values: `touch_unchanged` (the key and the compared
      values go to the database, no wide row, no `ON CONFLICT`);
    - the others, and any the touch did not find as read (a concurrent rewrite): `upsert`
      rewriting only a changed row, which then counts itself (`RETURNING`, no probe);
    - a row that upsert found equal after all (``known`` was stale): its ON CONFLICT has
      locked it, so its touch columns move as `upsert` would have moved them.

    A row may hold only its key and compared columns: ``expand`` gives its whole row, asked
    only for the rows written whole. Without ``known`` (or on SQLite, the demo's small
    database) this is `upsert` itself."""
    whole = expand or (lambda row: row)
    if known is None or sql.dialect(session) != "postgresql":
        return upsert(session, model, [{**whole(row), **fixed} for row in rows],
                      conflict=conflict,
                      insert_only=insert_only, compare=compare, touch=touch,
                      copy_threshold=copy_threshold)
    if not rows:
        return Written(0, 0, 0)
    rows = dedupe(rows, [c for c in conflict if c not in fixed])
    # Nothing stored when read (a first pull): every row is new, nothing to look up, and
    # the pages go straight into the table (`upsert`'s ``expect_new``). Rows marked deleted
    # are not in the read: the page meeting them falls back to the upsert (one COPY undone),
    # and the pages after it are upserted.
    first = not len(known) and not known.met_unread
    same, rest = ([], list(rows)) if first else known.split(rows)
    rest += touch_unchanged(session, model, same, fixed=fixed, conflict=conflict,
                            compare=compare, touch=touch)
    inserted = updated = 0
    if rest:
        if expand is not None:
            rest = [expand(row) for row in rest]
        full = [{**row, **fixed} for row in rest]
        written = upsert(session, model, full, conflict=conflict, insert_only=insert_only,
                         compare=compare, copy_threshold=copy_threshold, expect_new=first)
        inserted, updated = written.inserted or 0, written.updated or 0
        if first and inserted < len(full):
            known.met_unread = True
        if written.unchanged:
            # Rare: equal already. Their rows are locked by this transaction since the
            # upsert's ON CONFLICT, so this touch finds them (and moves the rows just
            # written, equal now too, to the same values again).
            touch_unchanged(session, model, rest, fixed=fixed, conflict=conflict,
                            compare=compare, touch=touch)
    # The others were touched: unchanged.
    return Written(len(rows), inserted, updated)
