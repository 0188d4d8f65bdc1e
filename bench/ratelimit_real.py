"""Figure 2b: an account whose real limits are below plan x share (issue 14).

Zoom's limits belong to the whole account and are shared with every other app on it, so the
plan's numbers times our default share are an upper bound. The fake is set to a fraction of Pro
(``rate_scale``: 0.25, 0.1 and 0.05 x Pro; Heavy is then 2/s, 1/s and one request per two
seconds), the source keeps the plan and the default share (so the limiter starts at
10/s x 0.8 = 8/s), and 1 or 4 processes page the same sign-in backfill as figure 2 through the
production client. Each run starts from nothing learned (the limiter's keys are deleted).

Reported: the share of requests answered 429, and the wall time over the floor at the real
limit (``pages / real rate``). Ratios of one run; nothing here is asserted by a test.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

from bench.harness import BenchEnv, FakeZoomProcess, Figure, create_sources, run_processes
from bench.ratelimit import _plan, pager

SCALES = (0.25, 0.1, 0.05)
PRO_HEAVY = 10


def real_rate(scale: float) -> float:
    """The fake's Heavy rate at `scale` (its windows hold whole requests: fakezoom/core.py)."""
    scaled = PRO_HEAVY * scale
    if scaled < 1:
        return 1 / max(1, round(1 / scaled))
    return float(max(1, round(scaled)))


def run(env: BenchEnv, headers: bool = True) -> Figure:
    from worker.clients import token_for_source
    from worker.settings import get_settings

    fig = Figure("ratelimit_real", "Rate limits learned: an account limited below its plan")
    config, windows, pages, events = _plan(env)
    config.omit_optional_headers = not headers
    share = get_settings().rate_limit_share
    fig.raw.update(plan=config.plan, share=share, pages=pages, events=events,
                   windows=len(windows), headers=headers)
    ctx = mp.get_context("spawn")
    with FakeZoomProcess(config) as fake:
        env.point_at(fake)
        (sid,) = create_sources(env.engine, fake.accounts)
        token_for_source(sid)
        for scale in SCALES:
            fake.configure(rate_scale=scale)
            rate = real_rate(scale)
            floor = pages / rate
            for n in (1, 4):
                for key in env.redis.scan_iter("ai:rl:*"):
                    env.redis.delete(key)
                fake.reset_rate_limits()
                fake.reset_stats()
                q: Any = ctx.Queue()
                for w in windows:
                    q.put(w)
                for _ in range(n):
                    q.put(None)
                result = run_processes(pager, [{"source": str(sid), "windows": q}] * n)
                result.raise_errors()
                stats = fake.stats()
                requests = int(stats["requests_total"])
                limited = int(stats["rate_limited_total"])
                served = sum(v["pages"] for v in result.values)
                label = f"{scale:g} x Pro, {n} process{'es' if n > 1 else ''}"
                fig.raw[label] = {"wall_seconds": round(result.wall, 2), "requests": requests,
                                  "429s": limited, "pages": served, "real_rate": rate}
                fig.add(f"{label}: 429s / requests", limited / max(1, requests), "<= 0.05",
                        f"{limited} of {requests} requests ({pages} pages)", unit="")
                fig.add(f"{label}: wall time", result.wall / floor, "<= 1.2",
                        f"{pages} pages / {rate:g} per s (the real limit)")
                if served != pages:
                    fig.notes.append(f"{label}: paged {served} pages, expected {pages}")
    fig.notes.append(f"the limiter starts at Pro Heavy x share = {PRO_HEAVY * share:g}/s and "
                     "learns the account's limit from the first 429s"
                     + ("" if headers else " (no X-RateLimit headers: Retry-After only)"))
    return fig
