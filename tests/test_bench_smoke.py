"""The benchmark plumbing works end to end on tiny sizes. Nothing here looks at a timing: only
that figures come out and are well formed."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.harness import Figure, format_table, percentile, run_processes, write_results

ROOT = Path(__file__).resolve().parent.parent


def _square(arg: int, wait_start: Any) -> int:
    wait_start()
    return arg * arg


def test_percentiles_interpolate_and_tolerate_empty_input() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 99) == 5
    assert math.isnan(percentile([], 50))


def test_worker_processes_start_together_and_report_values_and_memory() -> None:
    run = run_processes(_square, [2, 3], timeout=60)
    run.raise_errors()
    assert run.values == [4, 9]
    assert all(r["peak_rss"] > 0 for r in run.results)
    assert run.wall >= 0


def test_table_and_results_file_carry_every_metric(tmp_path: Path) -> None:
    fig = Figure("demo", "a demo figure")
    fig.add("ratio", 1.25, "1.0", "a baseline")
    fig.add("count", 3, "0", unit="n")
    fig.add("missing", None, "1.0")
    broken = Figure("broken", "a failed figure", error="Traceback\nValueError: boom\n")
    table = format_table([fig, broken])
    assert "1.25x" in table
    assert "n/a" in table
    assert "ValueError: boom" in table
    path = write_results([fig, broken], {"nproc": 2}, quick=True, path=tmp_path / "r.json")
    body = json.loads(path.read_text())
    assert [f["key"] for f in body["figures"]] == ["demo", "broken"]
    assert fig.well_formed()
    assert not broken.well_formed()


def test_a_quick_figure_runs_against_its_own_database_and_redis(tmp_path: Path) -> None:
    """`python -m bench --only scheduling --quick` end to end, as `make bench` runs it."""
    out = tmp_path / "results.json"
    # Not the bench's default Redis DB (14): a `make bench` running meanwhile would have its
    # locks and leases flushed from under it.
    env = {**os.environ, "AI_BENCH_REDIS_DB": os.environ.get("AI_SMOKE_BENCH_REDIS_DB", "15")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "scheduling", "--quick", "--results",
         str(out)], cwd=ROOT, capture_output=True, text=True, timeout=280, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = json.loads(out.read_text())
    assert body["machine"]["nproc"] >= 1
    (figure,) = body["figures"]
    assert figure["key"] == "scheduling"
    assert figure["error"] is None
    assert figure["metrics"]
    for metric in figure["metrics"]:
        assert isinstance(metric["name"], str)
        assert metric["ideal"]
        assert metric["value"] is None or isinstance(metric["value"], int | float)
    assert "scheduling" in proc.stdout
