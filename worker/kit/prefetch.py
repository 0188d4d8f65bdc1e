"""Read ahead of a slow iterator in a thread: the next Zoom page is fetched while this one is
written, so a chunk's wall time tends to the larger of the two instead of their sum.

Bounded: the thread holds at most ``depth`` items beyond the one the caller is working on, so
memory stays flat whatever the number of pages. The iterator runs (and is closed) entirely in
the thread; what it raises is raised to the caller where that item would have come, with the
items before it delivered first. The thread runs in a copy of the caller's context (log
fields such as the run id follow it).
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import TypeVar, cast

T = TypeVar("T")

_END = object()
# How long the caller waits, once it has stopped early, for the thread to notice: a request
# in flight is not waited for (the thread drops its answer and ends).
_JOIN_SECONDS = 0.5


def prefetched(items: Iterator[T], depth: int = 1) -> Generator[T, None, None]:
    """`items`, fetched up to `depth` ahead in a thread."""
    slots = threading.Semaphore(depth)
    ready: queue.SimpleQueue[tuple[object, BaseException | None]] = queue.SimpleQueue()
    stop = threading.Event()

    def produce() -> None:
        try:
            while True:
                slots.acquire()
                if stop.is_set():
                    return
                try:
                    item = next(items)
                except StopIteration:
                    ready.put((_END, None))
                    return
                ready.put((item, None))
        except BaseException as exc:  # handed to the caller, raised there
            ready.put((_END, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=contextvars.copy_context().run, args=(produce,),
                              name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = ready.get()
            if item is _END:
                if exc is not None:
                    raise exc
                return
            slots.release()  # the caller works on this one: the thread may fetch the next
            yield cast(T, item)
    finally:
        stop.set()
        slots.release()
        thread.join(_JOIN_SECONDS)


@contextmanager
def prefetching(items: Iterator[T], depth: int = 1) -> Iterator[Iterator[T]]:
    """`prefetched`, whose thread ends with the block even when the loop raises (a generator
    left to the garbage collector would keep it waiting while a traceback holds the loop)."""
    ahead = prefetched(items, depth)
    try:
        yield ahead
    finally:
        ahead.close()
