"""A free TCP port on 127.0.0.1, for a server about to be started on it (the demo's API and
Flower, the benchmarks' and tests' throwaway servers).

The port is free when this returns; another process could take it before the server binds it,
which on one machine and one loopback address is rare enough for these uses.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
