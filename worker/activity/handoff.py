"""A sign-in chunk fetches the first pages of its chain's next chunk while it ends, and hands
them over through Redis.

Why: between a chunk's last request and the next chunk's first, the chain sends nothing while
the chunk writes its last page, recomputes the day summaries, advances the watermark and
commits, and while the next chunk's task is sent, picked up, locked and begun: 350-500 ms a
boundary on the loaded bench machine, three or four lost Heavy slots at 8 a second, on the path
to the first insight (bench/RESULTS.md, issue 14, `backfill`). The limiter spaces requests at
1/rate with no burst, so a slot not used is lost.

How: once a sign-in chunk's own pages are all in (the last one arrived, not yet written), a
thread fetches the first ``PAGES`` pages of the next window (the same request the next chunk
would make, through the same client and limiter, charged to this chunk's reservation) while the
chunk writes and ends, and stores them under the next chunk's id, with a TTL. The chunk waits
for the thread before it commits, so the pages are stored before the next chunk is sent. The
next chunk, whichever worker runs it, takes them once (GETDEL) if they answer its own request,
and pages on from the last one's token; otherwise (expired, taken by an earlier delivery,
Redis down, a failed fetch) it fetches from the first page as before. Either way the
rows are the same: the pages are Zoom's answers to the same request, a moment earlier.

The stash is encrypted like the token cache (``kit.crypto``): the pages hold people's e-mail
and IP addresses, and Redis is shared with the broker and every tenant.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, timedelta
from typing import Any, Protocol

import redis
from sqlmodel import Session

from worker.kit.crypto import CredentialsUnreadable, decrypt_text, encrypt_text
from worker.models import SyncRun
from worker.runs.lifecycle import next_in_chain
from worker.zoom.client import Page
from worker.zoom.reports import window_params

log = logging.getLogger(__name__)

# Pages fetched ahead: enough to cover a boundary (350-500 ms) at 8 a second (3 left 0.3 s
# gaps, the next chunk writing the handed pages before its own first request).
PAGES = 4
# The next chunk normally starts within a second; a stash nobody takes goes away.
TTL_SECONDS = 120
# How long the ending chunk waits for its thread before it commits; past it, the thread stores
# nothing (the next chunk would already be fetching the same pages).
JOIN_SECONDS = 10.0


class Pager(Protocol):
    def iter_pages(
        self, path: str, params: dict[str, Any] | None, items_key: str
    ) -> Iterator[Any]: ...


def key(run_id: uuid.UUID) -> str:
    return f"ai:handoff:{run_id}"


def stash(redis_client: redis.Redis, run_id: uuid.UUID, path: str, params: dict[str, Any],
          pages: list[dict[str, Any]]) -> None:
    """Hand ``pages`` (Zoom's answers to ``path`` with ``params``) to chunk ``run_id``."""
    redis_client.set(key(run_id), encrypt_text(json.dumps(
        {"path": path, "params": params, "pages": pages})), ex=TTL_SECONDS)


def window_days(run: SyncRun) -> tuple[date, date]:
    """A chunk's window as the inclusive UTC dates its report requests ask for."""
    assert run.window_start is not None
    assert run.window_end is not None
    first = run.window_start.astimezone(UTC).date()
    last = (run.window_end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return first, last


def window_of(run: SyncRun) -> dict[str, str]:
    """The report parameters of a chunk's window (as `service.Chunk.params`)."""
    return window_params(window_days(run))


def pages(redis_client: redis.Redis, client: Pager, run_id: uuid.UUID, path: str,
          params: dict[str, Any], items_key: str,
          then: Callable[[], None] = lambda: None) -> Iterator[Any]:
    """The pages of ``path``: those handed over for this chunk first, then the rest from Zoom;
    ``then`` is called once the last one is in (not when the caller stops early)."""
    yield from _pages(redis_client, client, run_id, path, params, items_key)
    then()


def _pages(redis_client: redis.Redis, client: Pager, run_id: uuid.UUID, path: str,
           params: dict[str, Any], items_key: str) -> Iterator[Any]:
    handed: list[Page] = []
    try:
        raw = redis_client.getdel(key(run_id))
        stash = json.loads(decrypt_text(raw)) if raw else None
        if stash and stash.get("path") == path and stash.get("params") == params:
            handed = [Page(items=p["items"], raw=p["raw"], number=p["number"])
                      for p in stash["pages"]]
    except (redis.RedisError, CredentialsUnreadable, ValueError, KeyError, TypeError) as exc:
        log.info("chunk %s: no pages handed over (%s); fetching from the first", run_id,
                 type(exc).__name__)
    if not handed:
        yield from client.iter_pages(path, params, items_key)
        return
    yield from handed
    token = handed[-1].next_page_token
    if token:
        yield from client.iter_pages(path, {**params, "next_page_token": token}, items_key)


class Ahead:
    """The next chunk's first pages, fetched in a thread once ``start`` is called (this chunk's
    own pages are all in); ``wait`` before the commit that sends the next chunk."""

    def __init__(self, produce: Callable[[], None] | None) -> None:
        self._produce = produce
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._produce is None or self._thread is not None or self._stop.is_set():
                return
            # A copy of the starting thread's context (the prefetch thread's, itself a copy of
            # the chunk's): the requests draw from this chunk's Heavy reservation.
            self._thread = threading.Thread(target=contextvars.copy_context().run,
                                            args=(self._produce,), name="handoff",
                                            daemon=True)
            self._thread.start()

    def wait(self) -> None:
        with self._lock:
            thread = self._thread
            self._stop.set()  # not started by now: never (the chunk is ending)
        if thread is not None:
            thread.join(JOIN_SECONDS)


NOTHING = Ahead(None)


def next_pages(session: Session, redis_client: redis.Redis, client: Pager, run_id: uuid.UUID,
               path: str, items_key: str) -> Ahead:
    """The first pages of the chunk after ``run_id`` in its chain (if any), to fetch once
    ``start``ed."""
    run = session.get(SyncRun, run_id)
    following = next_in_chain(session, run) if run is not None else None
    if following is None or following.window_start is None or following.window_end is None:
        return NOTHING
    next_id, params = following.id, window_of(following)

    def produce() -> None:
        got: list[dict[str, Any]] = []
        try:
            ahead = client.iter_pages(path, params, items_key)
            try:
                for page in ahead:
                    got.append({"items": page.items, "raw": page.raw, "number": page.number})
                    if len(got) >= PAGES:
                        break
            finally:
                close = getattr(ahead, "close", None)
                if close is not None:
                    close()
        except Exception as exc:  # the next chunk fetches them itself, and meets it there
            log.info("chunk %s: pages of the next chunk not fetched ahead (%s)", run_id,
                     type(exc).__name__)
        if not got:
            return
        try:
            stash(redis_client, next_id, path, params, got)
        except redis.RedisError as exc:
            log.info("chunk %s: pages of the next chunk not handed over (%s)", run_id,
                     type(exc).__name__)

    return Ahead(produce)
