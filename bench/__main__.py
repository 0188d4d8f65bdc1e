"""`python -m bench [--only NAME[,NAME]] [--quick] [--full]`: run the figures, print one table,
write bench/results.json."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from bench.harness import (
    RESULTS_PATH,
    BenchEnv,
    Figure,
    format_table,
    machine_info,
    quiet_logging,
    write_results,
)

# Module name -> what it measures; also the order of the table.
FIGURES = {
    "tokens": "token stampede, expiry under load, cached read latency",
    "ratelimit": "rate-limit efficiency of 1, 2 and 4 worker processes",
    "ratelimit_real": "an account limited below plan x share: 429s and wall time / floor",
    "ingest": "activity ingestion against raw COPY, worker memory",
    "aggregation": "aggregation of a large directory, first and no-change runs",
    "api": "connection-test enqueue against /healthz",
    "scheduling": "dispatching due work for 1,000 and 10,000 sources",
    "webhooks": "webhook event-to-insight latency, intake against /healthz",
    "reports": "access review: CSV export memory at 100k/10k accounts, report page render",
    "metrics": "a /metrics scrape over a run history 10x as long",
}


def run_figure(name: str, env: BenchEnv) -> Figure:
    t0 = time.perf_counter()
    try:
        env.reset_data()
        module = importlib.import_module(f"bench.{name}")
        figure: Figure = module.run(env)
    except Exception:
        figure = Figure(name, FIGURES[name], error=traceback.format_exc())
        print(figure.error, file=sys.stderr)
    figure.seconds = round(time.perf_counter() - t0, 1)
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", help=f"comma-separated figures: {', '.join(FIGURES)}")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and one repeat (a couple of minutes)")
    parser.add_argument("--full", action="store_true",
                        help="the issue's full sizes even where they take long here "
                        "(1,000,000 events)")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (median)")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH,
                        help=f"where to write the JSON results (default {RESULTS_PATH.name})")
    args = parser.parse_args(argv)
    names = list(FIGURES)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in FIGURES]
        if unknown:
            parser.error(f"unknown figure(s): {', '.join(unknown)}")
    quiet_logging()
    figures: list[Figure] = []
    started = time.perf_counter()
    with BenchEnv(quick=args.quick, repeats=args.repeats, full=args.full) as env:
        machine = machine_info(env)
        for name in names:
            print(f"[bench] {name}: {FIGURES[name]} ...", file=sys.stderr, flush=True)
            figure = run_figure(name, env)
            figures.append(figure)
            print(f"[bench] {name}: {figure.seconds:.0f}s", file=sys.stderr, flush=True)
            # Written after every figure: a long run that is interrupted keeps what it measured.
            write_results(figures, machine, quick=args.quick, path=args.results)
    print(format_table(figures))
    for fig in figures:
        for note in fig.notes:
            print(f"  {fig.key}: {note}")
    path = write_results(figures, machine, quick=args.quick, path=args.results)
    print(f"\n{len(figures)} figure(s) in {time.perf_counter() - started:.0f}s on "
          f"{machine.get('nproc')} CPUs; details in {path}")
    return 1 if any(f.error for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
