"""Graceful stop: SIGTERM asks running work to stop after the page in hand.

Celery's warm shutdown (SIGTERM to the main process) stops consuming and waits for running
tasks; billiard's default in a prefork child turns SIGTERM into `SystemExit` mid-page, which
used to end runs `failed`. Instead, the main process forwards the request to its children, and
a child that is running a task only sets a flag: the run's `check()` between pages raises
`StopRequested`, the service has committed the page and its checkpoint, and the task hands the
run back as `queued` and re-sends it (worker/runs/task.py). An idle child exits at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

from celery.signals import task_postrun, task_prerun, worker_process_init, worker_shutting_down

log = logging.getLogger(__name__)

_requested = threading.Event()
_busy = threading.Event()
_in_pool_child = False
_previous: Any = None


class StopRequested(RuntimeError):
    """The worker is stopping: the run goes back to the queue from its last checkpoint."""


def requested() -> bool:
    return _requested.is_set()


def request() -> None:
    _requested.set()


def reset() -> None:
    """Tests in one process: forget an earlier stop."""
    _requested.clear()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    request()
    if not _busy.is_set() and callable(_previous):
        # No task in hand: exit the way billiard would.
        _previous(signum, frame)


def mark_pool_child() -> None:
    """Called in a prefork child (worker_process_init)."""
    global _in_pool_child
    _in_pool_child = True


def task_started() -> None:
    """In a pool child, before each task: own SIGTERM (billiard installs its handler after
    worker_process_init, so it is replaced here, once)."""
    global _previous
    _busy.set()
    if not _in_pool_child:
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is not _on_sigterm:
        _previous = current
        signal.signal(signal.SIGTERM, _on_sigterm)


def task_ended() -> None:
    # A child asked to stop while busy does not exit here (its result and the message's ack
    # still go through the main process); the warm shutdown then closes the pool.
    _busy.clear()


def forward_to_pool_children() -> None:
    """In the main process on warm shutdown: tell every pool child to stop after its page."""
    request()
    from billiard.process import active_children

    for child in active_children():
        if child.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
    log.info("stop requested: running runs hand back after their current page")


# Wired here (worker.runs is imported by every run task, so by every worker process), not in
# celery_app: the app module sits below the run lifecycle in the layers.
@worker_process_init.connect
def _pool_child_started(**_: Any) -> None:
    mark_pool_child()


@task_prerun.connect
def _task_started(**_: Any) -> None:
    task_started()


@task_postrun.connect
def _task_ended(**_: Any) -> None:
    task_ended()


@worker_shutting_down.connect
def _stopping(**_: Any) -> None:
    # Warm shutdown (SIGTERM): running runs stop after their page and hand themselves back.
    forward_to_pool_children()
