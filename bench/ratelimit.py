"""Figure 2: how close 1, 2 and 4 worker processes sharing one account's limiter come to the
rate Zoom allows, and how many 429s they cause.

A sign-in backfill (``/report/activities``, a Heavy API) of one account, split into Zoom's
one-month windows, is paged by N processes through the production client (``client_for_source``:
shared token, shared Redis limiter). The fake enforces Zoom's Pro limits (Heavy: 10/s per
account). The source uses the deployment's default share of the account's limits, so the
allowed rate is ``10/s x share``; the minimum wall time is ``pages / allowed rate``.
"""

from __future__ import annotations

import datetime as dt
import math
import queue
import uuid
from typing import Any

from bench.harness import (
    BenchEnv,
    FakeZoomProcess,
    Figure,
    WaitStart,
    create_sources,
    median,
    run_processes,
)

PAGE_SIZE = 300
HEAVY_PER_SECOND = {"free": 1, "pro": 10, "business": 40}


def pager(arg: dict[str, Any], wait_start: WaitStart) -> dict[str, int]:
    """Take month windows from the shared queue until the sentinel; page through each."""
    from worker.clients import client_for_source, token_for_source
    from worker.zoom.pagination import window_params

    _trace_429s()
    sid = uuid.UUID(arg["source"])
    client = client_for_source(sid)
    token_for_source(sid)  # cached by the parent: only warms this process's connections
    windows = arg["windows"]
    wait_start()
    pages = items = 0
    while True:
        try:
            window = windows.get(timeout=10)
        except queue.Empty:
            break
        if window is None:
            break
        start, end = (dt.date.fromisoformat(d) for d in window)
        for page in client.iter_pages("/report/activities",
                                      window_params((start, end), page_size=PAGE_SIZE),
                                      "activity_logs"):
            pages += 1
            items += len(page.items)
    return {"pages": pages, "items": items}


def _trace_429s() -> None:
    """With ``AI_BENCH_TRACE=path``: the limiter's account of every 429, appended to that file."""
    import logging
    import os

    path = os.environ.get("AI_BENCH_TRACE")
    if not path:
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(created).3f %(processName)s %(message)s"))
    logger = logging.getLogger("worker.ratelimit.bucket")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _plan(env: BenchEnv, pages: int | None = None
          ) -> tuple[Any, list[tuple[str, str]], int, int]:
    """Fake config, month windows, expected pages and events of the backfill. ``pages``: a
    backfill of exactly that many pages (the events per day are searched for it)."""
    from fakezoom.config import AccountSpec, AppSpec, FakeZoomConfig
    from fakezoom.core import FakeZoom
    from worker.zoom.pagination import month_windows

    today = dt.datetime.now(dt.UTC).date()
    days = 60 if env.quick and pages is None else 120
    # ~14,400 events (54 pages) in the full run, ~4,800 (18 pages) in the quick one.
    events = float(4_800 if env.quick else 14_400) if pages is None else pages * PAGE_SIZE * 0.9
    users = 200
    windows = month_windows(today - dt.timedelta(days=days), today - dt.timedelta(days=1))
    for _ in range(40):
        spec = AccountSpec(users=users, groups=0, custom_roles=0, days=days,
                           events_per_user_per_day=events / days / (users * 0.93),
                           meetings_per_host_per_day=0, operation_logs_per_day=0,
                           apps=[AppSpec(kind="s2s")])
        config = FakeZoomConfig(seed=21, plan="pro", accounts=[spec],
                                anchor_date=today.isoformat())
        data = FakeZoom(config).account(0).data
        counts = [data.count_events(s, e) for s, e in windows]
        got = sum(max(1, math.ceil(c / PAGE_SIZE)) for c in counts)
        if pages is None or got == pages:
            break
        events += (pages - got) * PAGE_SIZE / 2
    else:
        raise RuntimeError(f"no sign-in backfill of {pages} pages found (last: {got})")
    return config, [(s.isoformat(), e.isoformat()) for s, e in windows], got, sum(counts)


def run(env: BenchEnv) -> Figure:
    import multiprocessing as mp

    from worker.clients import token_for_source
    from worker.settings import get_settings

    fig = Figure("ratelimit", "Rate-limit efficiency: one account's backfill by N processes")
    config, windows, pages, events = _plan(env)
    share = get_settings().rate_limit_share
    allowed = HEAVY_PER_SECOND[config.plan] * share
    minimum = pages / allowed
    fig.raw.update(plan=config.plan, share=share, allowed_per_second=allowed, pages=pages,
                   events=events, windows=len(windows), minimum_seconds=round(minimum, 2))
    ctx = mp.get_context("spawn")
    with FakeZoomProcess(config) as fake:
        env.point_at(fake)
        (sid,) = create_sources(env.engine, fake.accounts)
        token_for_source(sid)
        # Last row: the whole of Zoom's rate (share 1.0), where any slack in the limiter's spacing
        # shows up as 429s.
        for n, full_share in ((1, False), (2, False), (4, False), (4, True)):
            if full_share:
                _set_share(env, sid, 1.0)
                share, allowed = 1.0, HEAVY_PER_SECOND[config.plan]
                minimum = pages / allowed
            label = f"{n} process{'es' if n > 1 else ''}" + (", share 1.0" if full_share else "")
            walls: list[float] = []
            limited: list[int] = []
            served: list[int] = []
            for _ in range(env.repeats):
                for key in env.redis.scan_iter("ai:rl:*"):
                    env.redis.delete(key)
                fake.reset_rate_limits()
                fake.reset_stats()
                q = ctx.Queue()
                for w in windows:
                    q.put(w)
                for _ in range(n):
                    q.put(None)
                result = run_processes(pager, [{"source": str(sid), "windows": q}] * n)
                result.raise_errors()
                stats = fake.stats()
                walls.append(result.wall)
                limited.append(int(stats["rate_limited_total"]))
                served.append(sum(v["pages"] for v in result.values))
            fig.raw[label] = {"wall_seconds": [round(w, 2) for w in walls], "429s": limited,
                              "pages": served}
            fig.add(f"{label}: wall time", median(walls) / minimum, "1.0",
                    f"{pages} pages / {allowed:g} per s (Pro Heavy x share {share:g})")
            fig.add(f"{label}: 429s from the fake", median(limited), "0",
                    f"median of {env.repeats}", unit="n")
            if any(s != pages for s in served):
                fig.notes.append(f"{n} processes paged {served} pages, expected {pages}")
    fig.notes.append("the limiter sends the first request at once and then one per interval, "
                     "so N pages take (N-1) intervals: (N-1)/N is the floor of the wall ratio")
    return fig


def _set_share(env: BenchEnv, sid: uuid.UUID, share: float) -> None:
    from sqlalchemy import update
    from sqlmodel import col

    from worker.models import Source

    with env.engine.begin() as conn:
        conn.execute(update(Source).where(col(Source.id) == sid).values(rate_share=share))
