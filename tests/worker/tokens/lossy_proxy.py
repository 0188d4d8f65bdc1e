"""A TCP proxy between the worker's OAuth client and fakezoom that loses answers on purpose.

Each connection is forwarded to the fake byte for byte. While ``lose`` is above zero, the next
request is handled by ``how`` and ``lose`` counts down (``lose=-1``: every request):

- ``drop``: forward the request, read the fake's answer (so Zoom has acted on it), then close
  the client's connection without a byte of it: a connection lost after the request was sent.
- ``hold``: the same, but keep the client waiting until ``close()``: an answer slower than the
  client's timeout, or a worker killed while it waits.
- ``swallow``: read the request and close without forwarding: it never reached Zoom, and the
  client cannot tell this from ``drop``.

``answered`` is set when the fake's answer to a lost request arrived here; ``lost`` counts them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class LossyProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, how: str = "drop",
                 lose: int = -1) -> None:
        assert how in ("drop", "hold", "swallow")
        self.upstream = (upstream_host, upstream_port)
        self.how = how
        self.lose = lose
        self.lost = 0
        self.answered = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True, name="lossy-proxy")
        self._thread.start()

    @property
    def oauth_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/oauth/token"

    def __enter__(self) -> LossyProxy:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._released.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.close()
        self._thread.join(5)

    def _track(self, s: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(s)
        return s

    def _take_loss(self) -> bool:
        with self._lock:
            if self.lose == 0:
                return False
            if self.lose > 0:
                self.lose -= 1
            return True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            first = client.recv(65536)
            if not first:
                return
            losing = self._take_loss()
            if losing and self.how == "swallow":
                with self._lock:
                    self.lost += 1
                return
            upstream = self._track(socket.create_connection(self.upstream))
            upstream.sendall(first)
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            while True:
                data = upstream.recv(65536)
                if not data:
                    return
                if not losing:
                    client.sendall(data)
                    continue
                with self._lock:
                    self.lost += 1
                self.answered.set()
                if self.how == "hold":
                    self._released.wait(120)
                return
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                client.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
