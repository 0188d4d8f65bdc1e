"""Runs: aggregation, correlation and activity sync are queued (ids only) and read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.api.helpers import TenantCtx, assert_no_secret, create_source
from tests.broker import broker_messages


def _iso(value: datetime) -> str:
    return value.isoformat()


@pytest.mark.parametrize(
    ("path", "queue", "task", "kind"),
    [
        ("aggregations", "aggregation", "zoom.aggregate", "aggregation"),
        ("correlations", "aggregation", "zoom.correlate", "correlation"),
        ("activity-syncs", "activity", "zoom.sync_activity", "activity"),
    ],
)
def test_a_run_is_queued_with_its_id_only(
    client: TestClient, tenant: TenantCtx, redis_client: Any, clean_db: Engine,
    path: str, queue: str, task: str, kind: str,
) -> None:
    source = create_source(client, tenant)
    response = client.post(f"/v1/sources/{source['id']}/{path}", headers=tenant.headers)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["kind"] == kind
    assert body["status"] == "queued"
    [message] = broker_messages(redis_client, queue)
    assert message["args"] == [body["id"]]
    assert message["headers"]["task"] == task
    assert message["headers"]["tenant_id"] == tenant.id
    assert_no_secret(message["raw"])
    with clean_db.connect() as conn:
        row = conn.execute(text("SELECT kind, status, trigger FROM sync_run WHERE id = :id"),
                           {"id": body["id"]}).one()
    assert tuple(row) == (kind, "queued", "api")
    run = client.get(body["links"]["self"], headers=tenant.headers).json()
    assert run["id"] == body["id"]
    assert run["children"] == []


@pytest.mark.usefixtures("pinned_clock")
def test_a_backfill_window_is_stored_on_the_run(
    client: TestClient, tenant: TenantCtx
) -> None:
    source = create_source(client, tenant)
    now = datetime.now(UTC)
    start, end = now - timedelta(days=60), now - timedelta(days=1)
    response = client.post(f"/v1/sources/{source['id']}/activity-syncs",
                           json={"from": _iso(start), "to": _iso(end)}, headers=tenant.headers)
    assert response.status_code == 202
    run = client.get(response.json()["links"]["self"], headers=tenant.headers).json()
    assert datetime.fromisoformat(run["window_start"]) == start
    assert datetime.fromisoformat(run["window_end"]) == end


@pytest.mark.usefixtures("pinned_clock")
def test_a_backfill_without_to_runs_until_now(client: TestClient, tenant: TenantCtx) -> None:
    source = create_source(client, tenant)
    response = client.post(f"/v1/sources/{source['id']}/activity-syncs",
                           json={"from": "2020-01-01T00:00:00Z"}, headers=tenant.headers)
    assert response.status_code == 422  # beyond six months
    start = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
    response = client.post(f"/v1/sources/{source['id']}/activity-syncs",
                           json={"from": start}, headers=tenant.headers)
    assert response.status_code == 202
    run = client.get(response.json()["links"]["self"], headers=tenant.headers).json()
    assert run["window_end"] is not None


@pytest.mark.usefixtures("pinned_clock")
@pytest.mark.parametrize(
    ("window", "field"),
    [
        ({"from": -10, "to": -20}, "to"),
        ({"from": -10, "to": -10}, "to"),
        ({"from": -200, "to": -10}, "from"),
        ({"from": -10, "to": 2}, "to"),
        ({"to": -10}, "from"),
    ],
)
def test_an_invalid_backfill_window_is_422_naming_the_field(
    client: TestClient, tenant: TenantCtx, window: dict[str, int], field: str
) -> None:
    source = create_source(client, tenant)
    now = datetime.now(UTC)
    body = {k: _iso(now + timedelta(days=v)) for k, v in window.items()}
    response = client.post(f"/v1/sources/{source['id']}/activity-syncs", json=body,
                           headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


def test_unknown_fields_in_a_backfill_are_refused(client: TestClient, tenant: TenantCtx) -> None:
    source = create_source(client, tenant)
    response = client.post(f"/v1/sources/{source['id']}/activity-syncs",
                           json={"since": "2026-01-01"}, headers=tenant.headers)
    assert response.status_code == 422


def test_switched_off_or_disabled_sources_refuse_runs(
    client: TestClient, tenant: TenantCtx
) -> None:
    no_agg = create_source(client, tenant, "activity-only", aggregation_enabled=False)
    assert client.post(f"/v1/sources/{no_agg['id']}/aggregations",
                       headers=tenant.headers).status_code == 409
    no_act = create_source(client, tenant, "governance-only", activity_enabled=False)
    assert client.post(f"/v1/sources/{no_act['id']}/activity-syncs",
                       headers=tenant.headers).status_code == 409
    client.post(f"/v1/sources/{no_act['id']}/disable", headers=tenant.headers)
    assert client.post(f"/v1/sources/{no_act['id']}/aggregations",
                       headers=tenant.headers).status_code == 409


def test_an_activity_run_lists_its_chunks_and_runs_are_filtered_and_paged(
    client: TestClient, tenant: TenantCtx
) -> None:
    from tests.api.seed import seed_directory_and_activity

    source = create_source(client, tenant)
    seeded = seed_directory_and_activity(tenant.id, source["id"])
    run = client.get(f"/v1/runs/{seeded.run_id}", headers=tenant.headers).json()
    assert [c["id"] for c in run["children"]] == [str(i) for i in seeded.child_run_ids]
    assert run["children"][0]["seen"] == 7
    client.post(f"/v1/sources/{source['id']}/aggregations", headers=tenant.headers)
    client.post(f"/v1/sources/{source['id']}/aggregations", headers=tenant.headers)
    runs = f"/v1/sources/{source['id']}/runs"
    top = client.get(runs, headers=tenant.headers).json()["items"]
    assert [r["kind"] for r in top] == ["aggregation", "aggregation", "activity"]
    with_chunks = client.get(f"{runs}?include_chunks=true", headers=tenant.headers).json()
    assert len(with_chunks["items"]) == 5
    only = client.get(f"{runs}?kind=activity&status=running", headers=tenant.headers).json()
    assert [r["id"] for r in only["items"]] == [str(seeded.run_id)]
    page1 = client.get(f"{runs}?limit=2", headers=tenant.headers).json()
    page2 = client.get(f"{runs}?limit=2&cursor={page1['next_cursor']}",
                       headers=tenant.headers).json()
    assert [r["id"] for r in page1["items"] + page2["items"]] == [r["id"] for r in top]
    bad = client.get(f"{runs}?kind=nope", headers=tenant.headers)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "kind"


def test_a_backfill_is_accepted_exactly_within_zooms_report_horizon(
    client: TestClient, tenant: TenantCtx
) -> None:
    from worker.zoom.reports import earliest_report_time

    source = create_source(client, tenant)
    floor = earliest_report_time(datetime.now(UTC))
    url = f"/v1/sources/{source['id']}/activity-syncs"
    early = client.post(url, json={"from": _iso(floor - timedelta(hours=1))},
                        headers=tenant.headers)
    assert early.status_code == 422
    assert "six months" in early.text
    assert client.post(url, json={"from": _iso(floor + timedelta(hours=1))},
                       headers=tenant.headers).status_code == 202
