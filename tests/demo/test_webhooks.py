"""The demo's webhook step on the demo's own stack (SQLite, fakeredis's TCP server, the worker
and API processes), one small tenant: fakezoom's signed sign-in reaches the insights and the
demo prints how long it took."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from demo.run import Api, DemoOptions, DemoTenant, fake_config, follow_work, setup_tenants
from demo.run import run_connection_tests as connection_tests
from demo.stack import Stack, StackConfig
from demo.webhooks import show_pushed_sign_in
from fakezoom.config import CLASSIC_SCOPES
from fakezoom.core import FakeZoom
from fakezoom.server import FakeZoomServer

pytestmark = pytest.mark.slow


def test_a_sign_in_zoom_pushes_reaches_the_insights_and_its_latency_is_printed(
    tmp_path: Path
) -> None:
    options = DemoOptions(users=(6, 0, 0), days=3, data_dir=tmp_path / "demo-data",
                          use_env_services=False, worker_concurrency=2, timeout=60)
    tenants = [DemoTenant("Acme Corp", "s2s", 6, scopes=[*CLASSIC_SCOPES, "role:read:admin"])]
    fake = FakeZoom(fake_config(tenants, options))
    out = io.StringIO()
    console = Console(file=out, width=140)
    stack = Stack(StackConfig(data_dir=options.data_dir, use_env_services=False,
                              worker_concurrency=2, backfill_days=options.days))
    with stack, FakeZoomServer(fake) as zoom:
        stack.prepare()
        stack.migrate()
        stack.settings_env(zoom.oauth_token_url, zoom.api_url)
        stack.start_services()
        stack.wait_ready()
        api = Api(stack.api_url)
        try:
            setup_tenants(api, stack.admin_key, tenants, fake, options, console)
            connection_tests(api, tenants, console, timeout=60)
            follow_work(api, tenants, console, options.timeout, stack.check_alive)
            (acme,) = tenants
            events_before = api.count("/v1/activity", acme.key, source_id=acme.source_id)
            pushed = show_pushed_sign_in(api, stack.api_url, acme, fake, 0, console)
            events_after = api.count("/v1/activity", acme.key, source_id=acme.source_id)
            source = api.call("GET", f"/v1/sources/{acme.source_id}", acme.key)
        finally:
            api.close()
        # Nothing but the webhook brought it: no pull ran after the backfill.
        assert events_after == events_before + 1
        assert pushed.before is None or pushed.before < pushed.signed_in_at
        assert pushed.email in {u["email"] for u in fake.account(0).all_users()}
        assert source["last_webhook_at"] is not None
        assert source["credentials"]["webhook_secret_token"] is True
        # The Secret Token is the authentication: a request signed with another is refused.
        refused = httpx.post(f"{stack.api_url}/v1/webhooks/zoom/{acme.source_id}",
                             content=b'{"event": "user.signed_in"}',
                             headers={"x-zm-request-timestamp": "1", "x-zm-signature": "v0=0"})
        assert refused.status_code == 401
    text = out.getvalue()
    assert f"{pushed.email}" in text
    assert f"{pushed.seconds:.2f} s" in text
