"""api.pagination.keyset_page, the one pager of every list route: composite keys, both orders,
ties on the first key, and the cursor it hands out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from api.errors import BadRequest
from api.pagination import keyset_page
from tests.factories import make_source, make_tenant
from worker.db import session_scope
from worker.models import ActivityEvent

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _events(clean_db: Any) -> Any:  # noqa: ARG001 - requested for its side effect
    with session_scope() as session:
        tenant = make_tenant(session, "pager")
        source = make_source(session, tenant)
        # Three instants, several events at each: the id breaks the ties.
        for n in range(9):
            session.add(ActivityEvent(tenant_id=tenant.id, source_id=source.id,
                                      event_key=f"e{n}", email="a@x.io", type="Sign in",
                                      time=T0 + timedelta(minutes=n % 3)))
        return tenant.id


@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("limit", [1, 2, 4, 9, 50])
def test_pages_of_a_composite_key_cover_every_row_once_in_order(
    clean_db: Any, limit: int, descending: bool
) -> None:
    tenant_id = _events(clean_db)
    keys = [col(ActivityEvent.time), col(ActivityEvent.id)]
    with session_scope() as session:
        query = select(ActivityEvent).where(ActivityEvent.tenant_id == tenant_id)
        expected = [(e.time, e.id) for e in session.exec(query)]
        expected.sort(reverse=descending)
        seen: list[tuple[datetime, int | None]] = []
        cursor = None
        pages = 0
        while True:
            page, cursor = keyset_page(session, query, keys, cursor, limit,
                                       lambda e: (e.time, e.id), kinds=[datetime, int],
                                       descending=descending)
            pages += 1
            seen += [(e.time, e.id) for e in page]
            assert len(page) <= limit
            if cursor is None:
                break
    assert seen == expected
    assert pages == max(1, -(-len(expected) // limit))


def test_a_cursor_of_the_wrong_shape_is_a_bad_request(clean_db: Any) -> None:
    tenant_id = _events(clean_db)
    with session_scope() as session:
        query = select(ActivityEvent).where(ActivityEvent.tenant_id == tenant_id)
        _, cursor = keyset_page(session, query, [col(ActivityEvent.id)], None, 2,
                                lambda e: (e.id,))
        assert cursor is not None
        with pytest.raises(BadRequest):
            keyset_page(session, query, [col(ActivityEvent.time), col(ActivityEvent.id)],
                        cursor, 2, lambda e: (e.time, e.id), kinds=[datetime, int])
