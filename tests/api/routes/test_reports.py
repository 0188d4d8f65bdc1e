"""The access review over HTTP: JSON pages, CSV, the HTML page, signed links, isolation."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from api.reports import links
from api.reports.demo import write_reports
from tests.api.helpers import World
from worker.models import utcnow
from worker.reports.export import CSV_COLUMNS, csv_record
from worker.reports.schemas import AccountReview
from worker.settings import get_settings


def _all_json(world: World, query: str = "") -> list[dict]:  # type: ignore[type-arg]
    items: list[dict] = []  # type: ignore[type-arg]
    cursor = ""
    while True:
        body = world.client.get(f"/v1/reports/access-review?limit=1&cursor={cursor}{query}",
                                headers=world.a.headers).json()
        items += body["items"]
        if not body["next_cursor"]:
            return items
        cursor = body["next_cursor"]


def test_json_pages_list_every_live_account_with_its_findings(world: World) -> None:
    items = _all_json(world)
    by_id = {i["zoom_id"]: i for i in items}
    # dave is deleted from Zoom: not under review.
    assert list(by_id) == ["u-alice", "u-bob", "u-carol"]
    alice, bob, carol = by_id["u-alice"], by_id["u-bob"], by_id["u-carol"]
    assert alice["identity_external_id"] == "emp-1"
    assert alice["role"] == "Admin"
    assert alice["groups"] == ["Engineering"]
    assert alice["findings"] == []
    assert "orphan" in bob["findings"]
    assert bob["identity_id"] is None
    # carol never did anything, but her account appeared just now (first seen = created).
    assert carol["findings"] == ["orphan"]
    only = _all_json(world, "&finding=orphan")
    assert [i["zoom_id"] for i in only] == ["u-bob", "u-carol"]


def test_the_csv_streams_the_same_rows_with_the_documented_columns(world: World) -> None:
    for kwargs in ({"headers": {**world.a.headers, "Accept": "text/csv"}},
                   {"headers": world.a.headers, "params": {"format": "csv"}}):
        response = world.client.get("/v1/reports/access-review", **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert tuple(rows[0]) == CSV_COLUMNS
        assert [r["zoom_id"] for r in rows] == ["u-alice", "u-bob", "u-carol"]
    bob = rows[1]
    assert bob["findings"].split(";")[0] == "orphan"
    assert bob["email"] == "bob@acme.example"
    assert bob["groups"] == "Engineering"


def test_the_summary_counts_what_the_rows_say(world: World) -> None:
    items = _all_json(world)
    summary = world.client.get("/v1/reports/access-review/summary",
                               headers=world.a.headers).json()
    assert summary["accounts"] == len(items)
    for finding, count in summary["findings"].items():
        assert count == sum(finding in i["findings"] for i in items), finding
    assert len(summary["daily_active_accounts"]) == 91


def test_a_signed_link_opens_the_page_without_a_key_until_it_expires(world: World) -> None:
    made = world.client.post("/v1/reports/access-review/links", json={"days": 30},
                             headers=world.a.headers)
    assert made.status_code == 201, made.text
    href = made.json()["href"]
    page = world.client.get(href)  # no API key
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert "Access review: acme" in html
    assert 'data-finding="orphan"' in html
    assert "bob@acme.example" in html
    assert "globex" not in html
    for chart in ("daily-active", "days-active", "licences"):
        assert f'data-chart="{chart}"' in html
    token = href.split("token=")[1]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert world.client.get(f"/v1/reports/access-review/page?token={tampered}").status_code == 403
    assert world.client.get("/v1/reports/access-review/page?token=nonsense").status_code == 403
    expired = links.sign(links.LinkClaims(tenant_id=uuid.UUID(world.a.id), days=30,
                                          expires_at=utcnow() - timedelta(seconds=1)),
                         get_settings())
    response = world.client.get(f"/v1/reports/access-review/page?token={expired}")
    assert response.status_code == 403
    assert "expired" in response.json()["detail"]


def test_another_tenant_sees_only_its_own_accounts(world: World) -> None:
    body = world.client.get("/v1/reports/access-review", headers=world.b.headers).json()
    ids = {i["source_id"] for i in body["items"]}
    assert ids == {world.source_b["id"]}
    theirs = world.client.get(f"/v1/reports/access-review?source_id={world.source_a['id']}",
                              headers=world.b.headers)
    assert theirs.status_code == 404
    summary = world.client.get("/v1/reports/access-review/summary", headers=world.b.headers)
    assert summary.json()["accounts"] == len(body["items"])
    html = world.client.get("/v1/reports/access-review?format=html", headers=world.b.headers)
    assert "Access review: globex" in html.text
    assert world.source_a["id"] not in html.text


def test_the_report_needs_a_tenant_key(world: World) -> None:
    assert world.client.get("/v1/reports/access-review").status_code == 401
    assert world.client.post("/v1/reports/access-review/links", json={}).status_code == 401


def test_the_demo_step_writes_each_tenants_report_and_says_where(
    world: World, tmp_path: Path
) -> None:
    out = io.StringIO()
    tenants = [SimpleNamespace(name="Acme", key=world.a.key),
               SimpleNamespace(name="globex", key=world.b.key)]
    paths = write_reports(world.client, tenants, tmp_path / "reports",
                          Console(file=out, width=200))
    assert [p.name for p in paths] == ["acme-access-review.html", "acme-access-review.csv",
                                       "globex-access-review.html", "globex-access-review.csv"]
    assert "Access review: acme" in paths[0].read_text()
    assert paths[1].read_text().startswith(",".join(CSV_COLUMNS))
    assert str(paths[0]) in out.getvalue()
    assert str(paths[2]) in out.getvalue()


def test_csv_cells_a_spreadsheet_would_run_are_quoted() -> None:
    row = AccountReview.model_construct(
        account_id=1, source_id=uuid.uuid4(), zoom_id="z1", email="a@x.example",
        display_name='=HYPERLINK("http://evil.example")', status="active", type=2,
        role_id="r", role="@admin", privileged=True, groups=["+sales", "ops"],
        identity_id=None, identity_external_id="-1", identity_status=None,
        identity_terminated_at=None, created_at=None, last_sign_in_at=None,
        last_activity_at=None, days_active=0, sign_ins=0, sign_ins_vs_average=-0.5,
        findings=["orphan"])
    record = dict(zip(CSV_COLUMNS, csv_record(row), strict=True))
    assert record["display_name"] == "'=HYPERLINK(\"http://evil.example\")"
    assert (record["role"], record["groups"], record["identity_external_id"]) == (
        "'@admin", "'+sales;ops", "'-1")
    assert record["sign_ins_vs_average"] == -0.5
    assert record["email"] == "a@x.example"
