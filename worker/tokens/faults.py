"""Named crash points for tests of the token refresh and rotation sequences.

Production never sets ``FAULT_POINT``. A test's child process sets it (``faults.FAULT_POINT =
"after_zoom_answer"``) and the process then kills itself with SIGKILL when it reaches that point,
so the test can check what the *next* process finds: no ``finally``, no ``atexit``, no flush, just
like an OOM kill or a lost machine. ``HOOK`` is the in-process variant (e.g. raise, or sleep).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

FAULT_POINT: str | None = None
HOOK: Callable[[str], None] | None = None


def fault(point: str) -> None:
    if HOOK is not None:
        HOOK(point)
    if FAULT_POINT is not None and point == FAULT_POINT:
        os.kill(os.getpid(), signal.SIGKILL)
