"""`make demo` in reduced form: the same code on embedded defaults (SQLite, fakeredis's TCP
server, fakezoom, real Celery worker processes, beat and the API as subprocesses), driven over
HTTP, with its summary checked against the fake's ground truth."""

from __future__ import annotations

import io
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from demo.run import MISSING_SCOPE, DemoOptions, run_demo

pytestmark = pytest.mark.slow


def test_the_demo_runs_on_embedded_defaults_and_matches_the_fake(tmp_path: Path) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    output = io.StringIO()
    options = DemoOptions(
        users=(14, 10, 8), days=30, data_dir=tmp_path / "demo-data", use_env_services=False,
        worker_concurrency=3, timeout=75,
    )
    # The demo's own timeout (75 s) bounds it; how fast it is belongs to bench/, not here.
    result = run_demo(options, Console(file=output, width=140))
    text = output.getvalue()

    acme, globex, initech = result.tenants
    assert (acme.kind, globex.kind) == ("s2s", "general")
    # Two pass; the third fails with its plain-language missing-scope message.
    assert acme.test["status"] == globex.test["status"] == "succeeded"
    assert initech.test["status"] == "failed"
    assert MISSING_SCOPE in initech.test["message"]
    assert "Scopes page" in initech.test["message"]
    assert initech.summary["status"] == "connection test failed"

    for index, tenant in enumerate((acme, globex)):
        account = result.fake.account(index)
        anchor = result.fake.anchor
        everything = (anchor - timedelta(days=options.days + 2), anchor + timedelta(days=1))
        s = tenant.summary
        assert s["accounts"] == len(account.all_users()), tenant.name
        assert s["groups"] == len(account.groups()), tenant.name
        assert s["roles"] == len(account.roles()), tenant.name
        assert s["correlated"] == len(tenant.identity_emails) > 0, tenant.name
        assert s["events"] == len(account.events(*everything)), tenant.name
        assert s["meetings"] == len(account.meetings(*everything)), tenant.name
        assert s["failed_runs"] == 0, tenant.name
        assert len(s["least_active"]) == 3

    # Step 4: a sign-in Zoom pushed reached the insights (the events above include it: the
    # fake's truth lists it, the activity table holds it once) and its latency is printed.
    pushed = result.pushed
    assert pushed is not None
    assert pushed.email in {u["email"] for u in result.fake.account(0).all_users()}
    assert pushed.before is None or pushed.before < pushed.signed_in_at
    assert f"{pushed.email}" in text
    assert f"{pushed.seconds:.2f} s" in text
    # The summary is printed, with the way to explore further.
    assert "What each tenant now sees" in text
    assert "make demo-serve" in text
    assert "Least active" in text
    # The database is the SQLite file under the demo's data directory, made fresh.
    assert (tmp_path / "demo-data" / "activity-insights.sqlite3").exists()
    # Every process the demo started is gone.
    deadline = time.monotonic() + 10
    while True:
        left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, [p.cmdline() for p in left]


def test_the_demo_reports_a_service_it_cannot_reach_in_one_line(tmp_path: Path) -> None:
    from demo.stack import Stack, StackConfig, StackError

    config = StackConfig(data_dir=tmp_path / "demo-data", use_env_services=False,
                         redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(StackError, match="cannot reach Redis"), Stack(config) as stack:
        stack.prepare()
