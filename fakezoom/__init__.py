"""A faithful fake of Zoom's OAuth and REST API (a subset of /v2) for tests, demo and benchmarks.

    from fakezoom import FakeZoom, FakeZoomConfig, FakeZoomServer
    with FakeZoomServer(FakeZoom(FakeZoomConfig(seed=1))) as srv:
        creds = srv.fake.account(0).s2s_app.credentials()
        ...  # POST srv.oauth_token_url, GET srv.api_url + "/users"
"""

from fakezoom.config import AccountSpec, AppSpec, FakeZoomConfig, FaultConfig
from fakezoom.core import Account, App, Clock, FakeZoom
from fakezoom.server import FakeZoomServer

__all__ = [
    "Account",
    "AccountSpec",
    "App",
    "AppSpec",
    "Clock",
    "FakeZoom",
    "FakeZoomConfig",
    "FakeZoomServer",
    "FaultConfig",
]
