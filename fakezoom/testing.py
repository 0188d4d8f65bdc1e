"""Helpers for tests in any package: start a fake, get tokens, build clients.

    from fakezoom.testing import running_fakezoom
    @pytest.fixture
    def fakezoom_server():
        with running_fakezoom(users=40, days=10) as srv:
            yield srv
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx

from fakezoom.config import AccountSpec, AppSpec, FakeZoomConfig
from fakezoom.core import App, FakeZoom
from fakezoom.server import FakeZoomServer


def small_config(*, seed: int = 7, accounts: int = 1, users: int = 40, days: int = 10,
                 plan: str = "pro", **settings: Any) -> FakeZoomConfig:
    """A config small enough for unit-speed tests; extra kwargs set FakeZoomConfig fields."""
    specs = [AccountSpec(users=users, days=days, events_per_user_per_day=1.0,
                         meetings_per_host_per_day=0.3,
                         apps=[AppSpec(kind="s2s"), AppSpec(kind="general")])
             for _ in range(accounts)]
    return FakeZoomConfig(seed=seed, plan=plan, accounts=specs, **settings)  # type: ignore[arg-type]


@contextlib.contextmanager
def running_fakezoom(config: FakeZoomConfig | None = None, **kwargs: Any
                     ) -> Iterator[FakeZoomServer]:
    """Start a fake on a free 127.0.0.1 port for the duration of the block."""
    fake = FakeZoom(config or small_config(**kwargs))
    with FakeZoomServer(fake) as server:
        yield server


def get_token(server: FakeZoomServer, app: App, client: httpx.Client | None = None
              ) -> dict[str, Any]:
    """Ask the fake for a token for app (S2S or General) and return the JSON answer."""
    data = {"grant_type": app.grant_type}
    if app.kind == "s2s":
        data["account_id"] = app.account_id
    else:
        assert app.refresh_token is not None
        data["refresh_token"] = app.refresh_token
    c = client or httpx.Client()
    try:
        r = c.post(server.oauth_token_url, auth=(app.client_id, app.client_secret), data=data)
        r.raise_for_status()
        return dict(r.json())
    finally:
        if client is None:
            c.close()


def api_client(server: FakeZoomServer, app: App, **kwargs: Any) -> httpx.Client:
    """An httpx client on the fake's /v2 with a fresh bearer token of app.

    Close it (`with`), or leave that to the server: it closes the client when it stops.
    """
    token = get_token(server, app)["access_token"]
    return server.close_on_stop(httpx.Client(
        base_url=server.api_url, headers={"Authorization": f"Bearer {token}"}, **kwargs))


@contextlib.contextmanager
def subprocess_fakezoom(*args: str, timeout: float = 20.0) -> Iterator[dict[str, Any]]:
    """Run `python -m fakezoom --port 0 ARGS` in its own process; yield its --json-out data.

    For benchmarks and multi-process tests that must not share the test process's GIL. The
    data has base_url, oauth_token_url, api_url and accounts (credentials).
    """
    import json
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fakezoom.json"
        # stderr to a file, not a pipe: a chatty server must never block on a full pipe.
        log = (Path(tmp) / "stderr.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "fakezoom", "--port", "0", "--json-out", str(out), *args],
            stdout=subprocess.DEVNULL, stderr=log,
        )
        try:
            deadline = time.monotonic() + timeout
            while not out.exists() or not out.read_text().strip().endswith("}"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = (Path(tmp) / "stderr.log").read_text(errors="replace")
                    raise RuntimeError(f"fakezoom subprocess did not start: {err}")
                time.sleep(0.05)
            yield json.loads(out.read_text())
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
