"""Keyset pagination: one helper for every list route (a page, then the cursor of its last row).

Pages are ordered by a unique key (an id, or an external id unique per tenant) and the cursor is
that key of the page's last row, so a page never skips or repeats a row when others are added.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlmodel import Session

from api.schemas.common import decode_cursor, encode_cursor

T = TypeVar("T")


def keyset_page(
    session: Session,
    query: Any,
    key: Any,
    cursor: str | None,
    limit: int,
    key_of: Callable[[T], Any],
    kind: type = int,
) -> tuple[list[T], str | None]:
    """The rows of ``query`` after ``cursor`` by ``key`` (a unique column), at most ``limit``,
    and the next page's cursor (None on the last page). ``key_of`` reads the key from a row."""
    after = decode_cursor(cursor, kind)
    if after is not None:
        query = query.where(key > after[0])
    rows: list[T] = list(session.exec(query.order_by(key).limit(limit + 1)))
    page = rows[:limit]
    next_cursor = encode_cursor(key_of(page[-1])) if len(rows) > limit else None
    return page, next_cursor
