"""While Postgres is down the API answers 503 problems that name the dependency (not 500), and
answers normally once it is back. A throwaway Postgres cluster of the test's own is stopped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from api.errors import PROBLEM_MEDIA_TYPE
from api.main import create_app
from tests.api.helpers import TestClient, new_tenant
from tests.worker.runs.harness import ThrowawayPostgres, database_at


@pytest.fixture
def outage_db(redis_client: Any) -> Iterator[ThrowawayPostgres]:  # noqa: ARG001 - requested for its side effect
    pg = ThrowawayPostgres()
    try:
        with database_at(pg.url):
            yield pg
    finally:
        pg.close()


def test_postgres_down_is_a_503_naming_the_database_then_back_to_normal(
    outage_db, admin_headers
) -> None:
    with TestClient(create_app()) as client:
        tenant = new_tenant(client, admin_headers, "acme")
        outage_db.stop()
        for path, headers in (("/v1/tenants", admin_headers),  # the admin key needs no row
                              ("/v1/sources", tenant.headers)):  # a tenant key is looked up
            answer = client.get(path, headers=headers)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["content-type"] == PROBLEM_MEDIA_TYPE
            assert answer.headers["retry-after"]
            body = answer.json()
            assert body["checks"] == {"postgres": "unreachable"}
            assert "database is unreachable" in body["detail"]
            assert "psycopg" not in answer.text  # no internals
        outage_db.start()
        assert client.get("/v1/sources", headers=tenant.headers).status_code == 200
