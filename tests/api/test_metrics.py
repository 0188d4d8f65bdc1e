"""``GET /metrics``: admin key only, figures from real Postgres and Redis that move after a real
run against fakezoom, no secret and (unless opted in) no tenant id in any series."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakezoom.server import FakeZoomServer
from tests.api.helpers import TenantCtx, TestClient
from tests.env import reset_process_state
from tests.factories import add_app_source, app_credentials
from worker.aggregation.service import run_aggregation
from worker.clients import token_for_source
from worker.db import session_scope
from worker.models import RunKind, RunStatus, Source, SyncRun, utcnow
from worker.settings import get_settings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient, headers: dict[str, str]) -> tuple[str, Samples]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all((k, want) in ls for k, want in labels.items()))


def new_run(source_id: uuid.UUID, **fields: object) -> uuid.UUID:
    with session_scope() as session:
        source = session.get_one(Source, source_id)
        run = SyncRun(tenant_id=source.tenant_id, source_id=source_id,
                      kind=fields.pop("kind", RunKind.AGGREGATION), **fields)  # type: ignore[arg-type]
        session.add(run)
        return run.id


@pytest.fixture
def per_tenant() -> Iterator[None]:
    os.environ["AI_METRICS_PER_TENANT"] = "true"
    reset_process_state()
    try:
        yield
    finally:
        os.environ.pop("AI_METRICS_PER_TENANT", None)
        reset_process_state()


def test_metrics_need_the_admin_key(client: TestClient, admin_headers: dict[str, str],
                                    tenant: TenantCtx) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/metrics", headers=tenant.headers).status_code == 403
    scrape(client, admin_headers)


def test_counters_move_after_a_run_and_hold_no_secret(
    zoom: FakeZoomServer, client: TestClient, admin_headers: dict[str, str], admin_key: str,
) -> None:
    account = zoom.fake.account(0)
    source_id = add_app_source(account, account.s2s_app)
    _, before = scrape(client, admin_headers)
    answered = sum(zoom.fake.stats_counters.requests.values())

    run = run_aggregation(new_run(source_id), enqueue=False)
    assert run.status == RunStatus.SUCCEEDED
    answered = sum(zoom.fake.stats_counters.requests.values()) - answered
    text, after = scrape(client, admin_headers)

    labels = {"kind": "aggregation", "status": "succeeded"}
    assert value(after, "ai_runs", **labels) == value(before, "ai_runs", **labels) + 1
    # Each API request the fake answered was counted once, under its category and status.
    assert answered > 0
    assert total(after, "ai_zoom_requests_total") - total(before, "ai_zoom_requests_total") == \
        answered
    assert value(after, "ai_token_refreshes_total", outcome="ok") == \
        value(before, "ai_token_refreshes_total", outcome="ok") + 1
    assert value(after, "ai_metrics_source_up", source="postgres") == 1
    assert value(after, "ai_metrics_source_up", source="redis") == 1
    # Every series is labelled by category, never by a tenant or source unless opted in.
    categories = {dict(ls).get("category") for (n, ls) in after if n == "ai_zoom_requests_total"}
    assert categories
    assert None not in categories
    _, creds = app_credentials(account.s2s_app)
    secrets = [creds["client_secret"], token_for_source(source_id).access_token, admin_key,
               get_settings().encryption_key]
    for secret in secrets:
        assert secret not in text
    with session_scope() as session:
        tenant_id = str(session.get_one(Source, source_id).tenant_id)
    assert tenant_id not in text
    assert str(source_id) not in text


def test_429s_count_per_category(
    zoom: FakeZoomServer, client: TestClient, admin_headers: dict[str, str],
) -> None:
    from worker.clients import client_for_source
    from worker.zoom.endpoints import category_for

    account = zoom.fake.account(0)
    source_id = add_app_source(account, account.s2s_app)
    zoom_client = client_for_source(source_id)
    zoom_client.get("/users", {"page_size": 1})  # the token and the account's limits settle
    _, before = scrape(client, admin_headers)
    zoom.fake.set_faults(error_next=1, error_status=429)
    zoom_client.get("/users", {"page_size": 1})  # answered 429 once, then 200
    _, after = scrape(client, admin_headers)
    category = str(category_for("/users"))
    for status in ("429", "200"):
        assert value(after, "ai_zoom_requests_total", category=category, status=status) == \
            value(before, "ai_zoom_requests_total", category=category, status=status) + 1
    # The retry after the 429 waited for the drained bucket of the account's limiter.
    assert value(after, "ai_zoom_limiter_wait_seconds_total", category=category) > \
        value(before, "ai_zoom_limiter_wait_seconds_total", category=category)


def test_state_figures_are_read_at_scrape_time(
    zoom: FakeZoomServer, client: TestClient, admin_headers: dict[str, str],
    redis_client: object,
) -> None:
    account = zoom.fake.account(0)
    source_id = add_app_source(account, account.s2s_app)
    started = utcnow() - dt.timedelta(seconds=600)
    new_run(source_id, status=RunStatus.RUNNING, started_at=started)
    plan = new_run(source_id, kind=RunKind.ACTIVITY, status=RunStatus.RUNNING, started_at=utcnow())
    for _ in range(2):
        new_run(source_id, kind=RunKind.ACTIVITY, status=RunStatus.DEFERRED, parent_id=plan)
    # Tasks waiting in the broker: Kombu's list per queue (and its priority siblings).
    broker = redis_client
    broker.lpush("aggregation", "t1", "t2")  # type: ignore[attr-defined]
    broker.lpush("aggregation\x06\x163", "t3")  # type: ignore[attr-defined]
    _, samples = scrape(client, admin_headers)
    assert value(samples, "ai_oldest_running_run_age_seconds", kind="aggregation") >= 600
    assert value(samples, "ai_oldest_running_run_age_seconds", kind="correlation") == 0
    assert value(samples, "ai_deferred_chunks") == 2
    assert value(samples, "ai_queue_depth", queue="aggregation") == 3
    assert value(samples, "ai_queue_depth", queue="connection_tests") == 0
    assert value(samples, "ai_runs", kind="activity", status="deferred") == 2


@pytest.mark.usefixtures("per_tenant")
def test_tenant_labels_only_when_the_operator_opts_in(
    zoom: FakeZoomServer, client: TestClient, admin_headers: dict[str, str],
) -> None:
    account = zoom.fake.account(0)
    source_id = add_app_source(account, account.s2s_app)
    run_aggregation(new_run(source_id), enqueue=False)
    with session_scope() as session:
        tenant_id = str(session.get_one(Source, source_id).tenant_id)
    _, samples = scrape(client, admin_headers)
    assert value(samples, "ai_runs", kind="aggregation", status="succeeded",
                 tenant=tenant_id) == 1
    assert total(samples, "ai_zoom_requests_total", source=str(source_id)) > 0
    assert value(samples, "ai_token_refreshes_total", outcome="ok", source=str(source_id)) == 1


@pytest.mark.usefixtures("clean_db", "redis_client")
def test_the_grafana_dashboard_queries_only_metrics_we_export() -> None:
    import json
    import re
    from pathlib import Path

    from worker.kit.metrics import StateCollector

    exported = set()
    for family in StateCollector().collect():
        exported.add(family.name)
        exported.add(family.name + "_total")  # counters are exposed with the suffix
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs" /
                            "grafana-dashboard.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\bai_[a-z_]+", target["expr"])}
    assert used
    assert used <= exported, used - exported


def test_runs_and_tests_are_the_unfinished_ones_and_those_ended_lately(
    zoom: FakeZoomServer, client: TestClient, admin_headers: dict[str, str],
) -> None:
    from worker.kit.metrics import NOT_ENDED, RECENT
    from worker.models import ConnectionTest, TestStatus
    from worker.runs.lifecycle import TERMINAL

    assert set(NOT_ENDED) == set(RunStatus) - TERMINAL
    account = zoom.fake.account(0)
    source_id = add_app_source(account, account.s2s_app)
    now = utcnow()
    long_ago = now - RECENT - dt.timedelta(minutes=5)
    lately = now - RECENT + dt.timedelta(minutes=5)
    for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED):
        new_run(source_id, status=status, finished_at=long_ago, created_at=long_ago)
    new_run(source_id, status=RunStatus.FAILED, finished_at=lately, created_at=long_ago)
    # Unfinished runs count whatever their age (a stuck one most of all).
    new_run(source_id, status=RunStatus.RUNNING, started_at=long_ago, created_at=long_ago)
    new_run(source_id, status=RunStatus.QUEUED, created_at=long_ago)
    with session_scope() as session:
        tenant_id = session.get_one(Source, source_id).tenant_id
        for status, finished in ((TestStatus.SUCCEEDED, long_ago), (TestStatus.FAILED, lately),
                                 (TestStatus.QUEUED, None)):
            session.add(ConnectionTest(tenant_id=tenant_id, source_id=source_id, status=status,
                                       finished_at=finished, created_at=long_ago))
    _, samples = scrape(client, admin_headers)
    runs = {dict(ls)["status"]: v for (n, ls), v in samples.items() if n == "ai_runs"}
    assert runs == {"failed": 1, "running": 1, "queued": 1}
    tests = {dict(ls)["status"]: v for (n, ls), v in samples.items()
             if n == "ai_connection_tests"}
    assert tests == {"failed": 1, "queued": 1}


@pytest.mark.usefixtures("clean_db")
def test_the_run_and_test_counts_read_indexes_not_the_whole_tables() -> None:
    from sqlalchemy import text

    from worker.db import get_engine
    from worker.kit.metrics import RECENT, connection_test_counts, run_counts

    since = utcnow() - RECENT
    with get_engine().connect() as conn:
        # Without a usable index the planner still picks a sequential scan, whatever its cost.
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        for query, table, indexes in (
            (run_counts(since, per_tenant=True), "sync_run",
             ("ix_sync_run_status", "ix_sync_run_finished_at")),
            (connection_test_counts(since, per_tenant=True), "connection_test",
             ("ix_connection_test_finished_at",)),
        ):
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            plan = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {compiled}")))
            assert f"Seq Scan on {table}" not in plan, plan
            for index in indexes:
                assert index in plan, plan
