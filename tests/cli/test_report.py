"""`activity-insights report`: the access review of a tenant or a source, to a file."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from tests.api.seed import seed_directory_and_activity
from worker.db import session_scope
from worker.models import Source, Tenant
from worker.reports.export import CSV_COLUMNS

Cli = Callable[..., Result]


def _seed() -> tuple[str, str]:
    with session_scope() as db:
        tenant = Tenant(name="acme")
        db.add(tenant)
        db.flush()
        source = Source(tenant_id=tenant.id, name="zoom-main")
        db.add(source)
        db.flush()
        ids = str(tenant.id), str(source.id)
    seed_directory_and_activity(*ids)
    return ids


def test_a_tenant_report_as_csv_json_and_html(cli: Cli, tmp_path: Path) -> None:
    _seed()
    out = tmp_path / "review.csv"
    result = cli("report", "acme", "--format", "csv", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f"{out}: 3 accounts" in result.output
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["zoom_id"] for r in rows] == ["u-alice", "u-bob", "u-carol"]

    as_json = tmp_path / "review.json"
    assert cli("report", "acme/zoom-main", "-f", "json", "-o", str(as_json)).exit_code == 0
    body = json.loads(as_json.read_text())
    assert body["summary"]["accounts"] == 3
    assert [a["zoom_id"] for a in body["accounts"]] == ["u-alice", "u-bob", "u-carol"]
    assert body["summary"]["findings"]["orphan"] == sum(
        "orphan" in a["findings"] for a in body["accounts"])

    page = tmp_path / "review.html"
    assert cli("report", "acme", "-f", "html", "-o", str(page)).exit_code == 0
    html = page.read_text()
    assert "Access review: acme" in html
    assert 'data-chart="licences"' in html
    assert list(tmp_path.glob(".*partial")) == []


def test_unknown_targets_and_unwritable_files_are_one_line_errors(
    cli: Cli, tmp_path: Path
) -> None:
    _seed()
    missing = cli("report", "nobody", "-o", str(tmp_path / "x.csv"))
    assert missing.exit_code == 2
    assert "no source 'nobody'" in missing.output
    nowhere = cli("report", "acme", "-o", str(tmp_path / "no-such-dir" / "x.csv"))
    assert nowhere.exit_code == 2
    assert "cannot write" in nowhere.output
    assert "Traceback" not in nowhere.output
