"""Run the fake on 127.0.0.1 in a background thread (tests) or in the foreground (`python -m`)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import httpx
import uvicorn

from fakezoom.app import create_app
from fakezoom.config import FakeZoomConfig
from fakezoom.core import FakeZoom


class FakeZoomURLs:
    """Zoom's two base URLs, as a fake served at ``base_url`` has them (Zoom: https://zoom.us
    for OAuth, https://api.zoom.us/v2 for the API; the fake serves both on one port)."""

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    @property
    def oauth_token_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v2"


class FakeZoomServer(FakeZoomURLs):
    """`with FakeZoomServer(fake) as srv:` serves `fake` at `srv.base_url` until the block ends.

    The port is bound before uvicorn starts, so `base_url` is valid as soon as `start()`
    returns and nothing races for a "free" port.
    """

    def __init__(self, fake: FakeZoom | FakeZoomConfig | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, log_level: str = "warning") -> None:
        if not isinstance(fake, FakeZoom):
            fake = FakeZoom(fake)
        self.fake = fake
        self.host = host
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
        # proto says TCP, and without it every response waits 40 ms for a delayed ACK.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        # Listen now: clients that connect before uvicorn's loop runs wait in the backlog
        # instead of being refused (matters for `python -m fakezoom --json-out`).
        self._sock.listen(2048)
        config = uvicorn.Config(
            create_app(fake), log_level=log_level, access_log=False, lifespan="off",
            timeout_keep_alive=30, backlog=2048,
            # The HTTP stack its hostile answers were written against, whatever else is
            # installed (the product's httptools and uvloop would win under "auto").
            http="h11", loop="asyncio",
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._clients: list[httpx.Client] = []

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeZoomServer:
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True,
            name=f"fakezoom:{self.port}",
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fakezoom server did not start")
            time.sleep(0.01)
        return self

    def close_on_stop(self, client: httpx.Client) -> httpx.Client:
        """Close `client` when the server stops: a test that drops a client leaks no socket."""
        self._clients.append(client)
        return client

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (used by `python -m fakezoom`)."""
        self._server.run(sockets=[self._sock])

    def __enter__(self) -> FakeZoomServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
