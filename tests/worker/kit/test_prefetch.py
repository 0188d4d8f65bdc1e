"""The read-ahead of Zoom pages: same items in order, errors where they happened, bounded."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator

import pytest

from worker.kit.prefetch import prefetched

who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_items_arrive_in_order_and_an_error_after_the_items_before_it() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("page 3 broke")

    got: list[int] = []

    def consume() -> None:
        for item in prefetched(pages()):
            got.append(item)

    with pytest.raises(ValueError, match="page 3 broke"):
        consume()
    assert got == [1, 2]


def test_the_thread_reads_at_most_depth_ahead_and_sees_the_callers_context() -> None:
    fetched: list[int] = []
    seen: list[str] = []
    asked = threading.Semaphore(0)

    def pages() -> Iterator[int]:
        for i in range(10):
            seen.append(who.get())
            fetched.append(i)
            asked.release()
            yield i

    who.set("run-1")
    it = prefetched(pages(), depth=2)
    assert next(it) == 0
    # Item 0 taken: the thread may fetch 1 and 2, and then must wait.
    for _ in range(3):
        asked.acquire()
    assert not asked.acquire(timeout=0.2)
    assert fetched == [0, 1, 2]
    assert next(it) == 1
    asked.acquire()
    assert fetched == [0, 1, 2, 3]
    assert set(seen) == {"run-1"}
    it.close()


def test_stopping_early_closes_the_source_in_its_thread() -> None:
    closed = threading.Event()

    def pages() -> Iterator[int]:
        try:
            yield from range(100)
        finally:
            closed.set()

    for item in prefetched(pages()):
        if item == 3:
            break
    assert closed.wait(5)
