"""A sign-in chunk hands the next chunk of its chain its first pages: no page is asked for twice,
the rows are Zoom's, and pages handed over for another request (or taken already) are not
used."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from tests.factories import add_app_source as add_source
from tests.worker.activity.test_service import new_plan
from worker.activity import handoff
from worker.activity.planner import plan_activity
from worker.activity.service import run_chunk
from worker.db import session_scope
from worker.models import ActivityEvent, RunStatus, Stream, SyncRun
from worker.zoom.client import Page


def signin_requests(server) -> int:
    accounts = server.fake.stats()["accounts"].values()
    return sum(e["requests"] for a in accounts for path, e in a["by_endpoint"].items()
               if "activities" in path)


def test_each_sign_in_page_is_asked_for_once_across_the_chain(zoom, redis_client) -> None:
    account = zoom.fake.account(0)
    source_id = add_source(account, account.s2s_app)
    now = dt.datetime.now(dt.UTC)
    plan_id = new_plan(source_id, window_start=now - dt.timedelta(days=70), window_end=now,
                       details={"streams": [Stream.SIGNINS]})
    plan_activity(plan_id, now=now, enqueue=False)
    before = signin_requests(zoom)
    with session_scope() as session:
        chain = list(session.exec(select(SyncRun).where(SyncRun.parent_id == plan_id)
                                  .order_by(col(SyncRun.window_start))))
    assert len(chain) >= 3
    for chunk in chain:
        run_chunk(chunk.id, now=now, enqueue=False)
    with session_scope() as session:
        done = list(session.exec(select(SyncRun).where(SyncRun.parent_id == plan_id)))
        stored = session.exec(select(func.count()).select_from(ActivityEvent).where(
            ActivityEvent.source_id == source_id)).one()
    assert all(c.status == RunStatus.SUCCEEDED for c in done)
    # Every page the chunks wrote was asked for once (the later chunks' first ones by the
    # chunk before them), and every page handed over was taken.
    assert signin_requests(zoom) - before == sum(c.pages for c in done)
    first = (now - dt.timedelta(days=70)).date()
    assert stored == account.data.count_events(first, now.date())
    assert not list(redis_client.scan_iter("ai:handoff:*"))


class Pages:
    """A client whose every request is one page ("from Zoom"), counted."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    def iter_pages(self, path: str, params: dict[str, Any] | None,
                   items_key: str) -> Iterator[Page]:
        assert (path, items_key) == ("/report/activities", "activity_logs")
        self.asked.append(dict(params or {}))
        yield Page(items=[{"from": "zoom"}], raw={}, number=1)


def handed(redis_client, run_id: uuid.UUID, params: dict[str, str]) -> None:
    page = {"items": [{"from": "handed", "email": "ann@example.com"}],
            "raw": {"next_page_token": ""}, "number": 1}
    handoff.stash(redis_client, run_id, "/report/activities", params, [page])


def test_pages_handed_over_are_not_readable_in_redis(redis_client) -> None:
    # People's e-mail and IP addresses: Redis is shared with the broker and every tenant.
    run_id = uuid.uuid4()
    handed(redis_client, run_id, {"from": "2026-11-01", "to": "2026-11-30"})
    stored = redis_client.get(handoff.key(run_id))
    assert stored
    assert b"ann@example.com" not in stored
    assert b"handed" not in stored


def test_a_stash_that_cannot_be_decrypted_is_fetched_again(redis_client) -> None:
    run_id, window = uuid.uuid4(), {"from": "2026-11-01", "to": "2026-11-30"}
    redis_client.set(handoff.key(run_id), json.dumps({"path": "/report/activities",
                                                      "params": window, "pages": []}))
    client = Pages()
    got = list(handoff.pages(redis_client, client, run_id, "/report/activities", window,
                             "activity_logs"))
    assert [p.items[0]["from"] for p in got] == ["zoom"]


def test_pages_handed_over_are_taken_once_and_only_for_their_own_request(redis_client) -> None:
    run_id, window = uuid.uuid4(), {"from": "2026-11-01", "to": "2026-11-30"}
    client = Pages()

    def items(params: dict[str, str]) -> list[Any]:
        return [p.items[0]["from"] for p in handoff.pages(
            redis_client, client, run_id, "/report/activities", params, "activity_logs")]

    handed(redis_client, run_id, window)
    assert items(window) == ["handed"]
    assert client.asked == []
    # Taken: a second delivery of the chunk asks Zoom.
    assert items(window) == ["zoom"]
    # Pages of another window are not this request's answer.
    handed(redis_client, run_id, {"from": "2026-10-01", "to": "2026-10-31"})
    assert items(window) == ["zoom"]
    assert client.asked == [window, window]
