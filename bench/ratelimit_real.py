"""Figure 2b: an account whose real limits are below plan x share (issue 14).

Zoom's limits belong to the whole account and are shared with every other app on it, so the
plan's numbers times our default share are an upper bound. The fake is set to a fraction of Pro
(``rate_scale``: 0.25, 0.1 and 0.05 x Pro; Heavy is then 2/s, 1/s and one request per two
seconds), the source keeps the plan and the default share (so the limiter starts at
10/s x 0.8 = 8/s), and 1 or 4 processes page the same sign-in backfill as figure 2 through the
production client. Each run starts from nothing learned (the limiter's keys are deleted).

Sizes: the default is figure 2's backfill (54 pages; 18 with ``--quick``); ``--full`` is the
issue's table, 104 pages at 0.25 x Pro and 162 at 0.1 and 0.05 x Pro. Variants: with Zoom's
``X-RateLimit-*`` headers on the 429s (the default), or with ``Retry-After`` only (the fake's
``omit_optional_headers``, as Zoom sometimes answers). ``python -m bench --only
ratelimit_real`` runs the header variant; this module's own command line chooses::

    python -m bench.ratelimit_real [--quick | --full] [--variant headers|retry-after|both]

Reported: the share of requests answered 429, and the wall time over the floor at the real
limit (``pages / real rate``). Ratios of one run; nothing here is asserted by a test.
``AI_BENCH_TRACE=path`` appends every 429 the limiter learns from (time, rate after, grants
counted) to that file, from every worker process.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from typing import Any

from bench.harness import BenchEnv, FakeZoomProcess, Figure, create_sources, run_processes
from bench.ratelimit import _plan, pager

SCALES = (0.25, 0.1, 0.05)
PRO_HEAVY = 10
# The issue's rows: the requests each needed (its table's "requests (minimum)").
ISSUE_PAGES = {0.25: 104, 0.1: 162, 0.05: 162}
VARIANTS = {"headers": True, "retry-after": False}


def real_rate(scale: float) -> float:
    """The fake's Heavy rate at `scale` (its windows hold whole requests: fakezoom/core.py)."""
    scaled = PRO_HEAVY * scale
    if scaled < 1:
        return 1 / max(1, round(1 / scaled))
    return float(max(1, round(scaled)))


def run(env: BenchEnv, headers: bool = True) -> Figure:
    from worker.settings import get_settings

    suffix = "" if headers else ", Retry-After only"
    fig = Figure("ratelimit_real" if headers else "ratelimit_real_retry_after",
                 "Rate limits learned: an account limited below its plan" + suffix)
    share = get_settings().rate_limit_share
    fig.raw.update(plan="pro", share=share, headers=headers,
                   size="issue" if env.full else ("quick" if env.quick else "default"))
    # One fake per backfill size: the issue's rows differ in size, the default ones do not.
    sizes: dict[int | None, list[float]] = {}
    for scale in SCALES:
        sizes.setdefault(ISSUE_PAGES[scale] if env.full else None, []).append(scale)
    for size, scales in sizes.items():
        _run_size(env, fig, size, scales, headers)
    fig.notes.append(f"the limiter starts at Pro Heavy x share = {PRO_HEAVY * share:g}/s and "
                     "learns the account's limit from the first 429s"
                     + ("" if headers else " (no X-RateLimit headers: Retry-After only)"))
    return fig


def _run_size(env: BenchEnv, fig: Figure, size: int | None, scales: list[float],
              headers: bool) -> None:
    from worker.clients import token_for_source

    config, windows, pages, events = _plan(env, size)
    config.omit_optional_headers = not headers
    fig.raw.setdefault("backfills", []).append(
        {"pages": pages, "events": events, "windows": len(windows), "scales": scales})
    ctx = mp.get_context("spawn")
    with FakeZoomProcess(config) as fake:
        env.point_at(fake)
        (sid,) = create_sources(env.engine, fake.accounts)
        token_for_source(sid)
        for scale in scales:
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
                label = f"{scale:g} x Pro, {n} process{'es' if n > 1 else ''}"
                _trace(f"-- {label}, {pages} pages, headers={headers}")
                result = run_processes(pager, [{"source": str(sid), "windows": q}] * n)
                result.raise_errors()
                stats = fake.stats()
                requests = int(stats["requests_total"])
                limited = int(stats["rate_limited_total"])
                served = sum(v["pages"] for v in result.values)
                fig.raw[label] = {"wall_seconds": round(result.wall, 2), "requests": requests,
                                  "429s": limited, "pages": served, "real_rate": rate}
                fig.add(f"{label}: 429s / requests", limited / max(1, requests), "<= 0.05",
                        f"{limited} of {requests} requests ({pages} pages)", unit="")
                fig.add(f"{label}: wall time", result.wall / floor, "<= 1.2",
                        f"{pages} pages / {rate:g} per s (the real limit)")
                if served != pages:
                    fig.notes.append(f"{label}: paged {served} pages, expected {pages}")


def _trace(line: str) -> None:
    import os

    path = os.environ.get("AI_BENCH_TRACE")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def main(argv: list[str] | None = None) -> int:
    from bench.harness import format_table, quiet_logging

    parser = argparse.ArgumentParser(prog="python -m bench.ratelimit_real",
                                     description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="18 pages")
    size.add_argument("--full", action="store_true",
                      help="the issue's sizes: 104 pages at 0.25 x Pro, 162 at 0.1 and 0.05")
    parser.add_argument("--variant", choices=[*VARIANTS, "both"], default="both")
    args = parser.parse_args(argv)
    quiet_logging()
    variants = list(VARIANTS) if args.variant == "both" else [args.variant]
    figures: list[Figure] = []
    with BenchEnv(quick=args.quick, full=args.full, repeats=1) as env:
        for variant in variants:
            env.reset_data()
            figures.append(run(env, headers=VARIANTS[variant]))
    # A command-line tool: the table on stdout is its output.
    lines = [format_table(figures)]
    lines += [f"  {fig.key}: {note}" for fig in figures for note in fig.notes]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
