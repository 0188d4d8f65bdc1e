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


def _quick_bench(tmp_path: Path, only: str, *, timeout: int
                 ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`python -m bench --only ONLY --quick`, as `make bench` runs it; its results file."""
    out = tmp_path / "results.json"
    # Not the bench's default Redis DB (14): a `make bench` running meanwhile would have its
    # locks and leases flushed from under it.
    env = {**os.environ, "AI_BENCH_REDIS_DB": os.environ.get("AI_SMOKE_BENCH_REDIS_DB", "15")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", only, "--quick", "--results", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc, json.loads(out.read_text())


def test_a_quick_figure_runs_against_its_own_database_and_redis(tmp_path: Path) -> None:
    """`python -m bench --only scheduling --quick` end to end, as `make bench` runs it."""
    proc, body = _quick_bench(tmp_path, "scheduling", timeout=280)
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


def test_the_write_figures_run_quick_and_print_their_floors(tmp_path: Path) -> None:
    """`--only ingest,aggregation --quick` end to end: both figures come out, with the floors
    printed beside their goals (the pull with its writes skipped; the raw COPY of the events
    and their day summaries), and the floor pull parsed what the real one stored."""
    _, body = _quick_bench(tmp_path, "ingest,aggregation", timeout=400)
    figures = {f["key"]: f for f in body["figures"]}
    assert set(figures) == {"ingest", "aggregation"}
    for figure in figures.values():
        assert figure["error"] is None, figure["error"]
        for metric in figure["metrics"]:
            assert metric["value"] is None or isinstance(metric["value"], int | float)
    names = {m["name"]: m["value"] for f in figures.values() for m in f["metrics"]}
    skipped = names["... the same pull with the writes skipped (fetched and parsed)"]
    assert isinstance(skipped, float)
    assert skipped > 0
    with_summaries = [v for n, v in names.items() if "their" in n and "day summaries" in n]
    assert len(with_summaries) == 2
    assert all(isinstance(v, float) and v > 0 for v in with_summaries)
    raw = figures["aggregation"]["raw"]
    assert raw["writes_skipped"]["seen"] == raw["first"]["seen"] > 0
    assert raw["writes_skipped"]["inserted"] == raw["first"]["inserted"]
    for size in figures["ingest"]["raw"].values():
        assert size["summary_rows"] > 0
        assert size["events"] > 0
