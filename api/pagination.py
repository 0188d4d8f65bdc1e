"""Keyset pagination: one helper for every list route (a page, then the cursor of its last row).

Pages are ordered by a unique key (an id, an external id unique per tenant, or a time with an id
to break ties) and the cursor is that key of the page's last row, so a page never skips or
repeats a row when others are added.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import and_, or_
from sqlmodel import Session

from api.schemas.common import decode_cursor, encode_cursor

T = TypeVar("T")


def after_key(keys: Sequence[Any], values: Sequence[Any], descending: bool) -> Any:
    """Rows strictly after ``values`` in the order of ``keys``: (a, b) > (x, y) spelt out as
    ``a > x OR (a = x AND b > y)`` (``<`` when descending), which Postgres and SQLite both plan
    on the keys' index."""
    terms = []
    for i, key in enumerate(keys):
        beyond = key < values[i] if descending else key > values[i]
        terms.append(and_(*(keys[j] == values[j] for j in range(i)), beyond))
    return or_(*terms)


def cut_page(rows: Sequence[T], limit: int, key_of: Callable[[T], tuple[Any, ...]]
             ) -> tuple[list[T], str | None]:
    """A page of ``limit`` from ``limit + 1`` rows read after the cursor, and the next page's
    cursor (the keys of its last row; None on the last page)."""
    page = list(rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(*(str(v) if isinstance(v, uuid.UUID) else v
                                      for v in key_of(page[-1])))
    return page, next_cursor


def keyset_page(
    session: Session,
    query: Any,
    keys: Sequence[Any],
    cursor: str | None,
    limit: int,
    key_of: Callable[[T], tuple[Any, ...]],
    kinds: Sequence[type] = (int,),
    descending: bool = False,
) -> tuple[list[T], str | None]:
    """The rows of ``query`` after ``cursor`` in the order of ``keys`` (columns that are unique
    together; of types ``kinds`` in the cursor), at most ``limit``, and the next page's cursor
    (None on the last page). ``key_of`` reads the keys' values from a row. A route whose rows
    are not one query (the access review aggregates its page first) decodes the cursor with
    `decode_cursor` and ends with `cut_page`, the same two steps."""
    after = decode_cursor(cursor, *kinds)
    if after is not None:
        query = query.where(after_key(keys, after, descending))
    order = [key.desc() for key in keys] if descending else list(keys)
    rows: list[T] = list(session.exec(query.order_by(*order).limit(limit + 1)))
    return cut_page(rows, limit, key_of)
