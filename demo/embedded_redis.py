"""An embedded Redis stand-in for the demo: fakeredis's TCP server in a process of its own.

``python -m demo.embedded_redis [PORT]`` listens on 127.0.0.1 (a free port when 0) and prints
``READY <port>`` once it accepts connections. It runs apart from the demo's own process so the
broker, token cache, locks and rate limiter never wait on the demo's GIL. Lua scripts work
because fakeredis is installed with its ``lua`` extra. Data lives in memory only.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from fakeredis import TcpFakeServer


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    port = int(args[0]) if args else 0
    TcpFakeServer.daemon_threads = True
    TcpFakeServer.allow_reuse_address = True
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # Everything is in memory and clients are going away too: nothing to flush or join.
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
