"""Figure 6: dispatching due work for 1,000 and 10,000 sources.

Every source is active with both schedules due. The scheduler tick (``dispatch_due``, what beat's
``scheduling.dispatch_due`` task runs) is called until it finds nothing more to do; it creates
the runs, advances the schedules, commits, and enqueues each run on the real broker (the bench's
Redis DB). Measured: total time at 10x the sources against the smaller size (ideal: 10x or
less), and the SQL statements each tick sends (``before_cursor_execute``).
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

from bench.harness import BenchEnv, Figure, count_queries, median, ratio

SOURCES_PER_TENANT = 10


def _seed(env: BenchEnv, n: int) -> None:
    from sqlalchemy import insert, text

    from worker.models import Source, SourceStatus, Tenant, utcnow

    now = utcnow()
    with env.engine.begin() as conn:
        conn.execute(text("TRUNCATE sync_run, source, tenant CASCADE"))
        tenants = [{"id": uuid.uuid4(), "name": f"sched-{i}", "created_at": now}
                   for i in range((n + SOURCES_PER_TENANT - 1) // SOURCES_PER_TENANT)]
        conn.execute(insert(Tenant), tenants)
        rows: list[dict[str, Any]] = []
        for i in range(n):
            due = now - timedelta(minutes=1 + i % 50)
            rows.append({
                "id": uuid.uuid4(), "tenant_id": tenants[i // SOURCES_PER_TENANT]["id"],
                "name": f"zoom-{i}", "description": "", "owner": "", "authoritative": False,
                "grant_type": "account_credentials", "zoom_account_id": f"acct-{i}",
                "credentials_ciphertext": "unused", "credentials_version": 1,
                "status": SourceStatus.ACTIVE, "status_message": "", "plan": "pro",
                "aggregation_enabled": True, "activity_enabled": True,
                "correlation_config": {"email": True}, "aggregation_cron": "",
                "activity_cron": "", "timezone": "UTC", "next_aggregation_at": due,
                "next_activity_at": due, "created_at": now, "updated_at": now,
            })
        for start in range(0, n, 2000):
            conn.execute(insert(Source), rows[start:start + 2000])
        conn.execute(text("ANALYZE source"))
    env.flush_redis()


def _dispatch_all(env: BenchEnv) -> dict[str, Any]:
    from worker.scheduling.service import dispatch_due

    ticks: list[dict[str, float]] = []
    runs = 0
    t0 = time.perf_counter()
    while True:
        with count_queries(env.engine) as statements:
            t_tick = time.perf_counter()
            sent = dispatch_due(redis_client=env.redis)
            elapsed = time.perf_counter() - t_tick
        if not sent:
            break
        runs += len(sent)
        ticks.append({"seconds": elapsed, "queries": len(statements), "runs": len(sent)})
    total = time.perf_counter() - t0
    return {"seconds": total, "ticks": ticks, "runs": runs}


def run(env: BenchEnv) -> Figure:
    from worker.scheduling.service import BATCH, TICK_BUDGET_SECONDS

    fig = Figure("scheduling", "Scheduling: dispatching due work")
    small, large = (200, 2000) if env.quick else (1000, 10000)
    results: dict[int, list[dict[str, Any]]] = {small: [], large: []}
    for _ in range(env.repeats):
        for n in (small, large):
            _seed(env, n)
            env.refresh_settings()
            results[n].append(_dispatch_all(env))
    t_small = median([r["seconds"] for r in results[small]])
    t_large = median([r["seconds"] for r in results[large]])
    fig.add(f"time to dispatch everything due, {large:,} sources", ratio(t_large, t_small),
            f"<= {large // small} (linear)", f"the same at {small:,} sources")
    for n in (small, large):
        last = results[n][-1]
        queries = [t["queries"] for t in last["ticks"]]
        runs_per_tick = [t["runs"] for t in last["ticks"]]
        total_queries = sum(queries)
        fig.add(f"{n:,} sources: SQL statements per tick (median)", median(queries),
                "constant in the batch", f"{len(queries)} ticks of <= {BATCH} sources",
                unit="n")
        fig.add(f"{n:,} sources: SQL statements per run enqueued",
                ratio(total_queries, last["runs"]), "< 1 (batched)",
                f"{last['runs']:,} runs", unit="n")
        per_tick_s = median([t["seconds"] for t in last["ticks"]])
        fig.raw[f"{n}_sources"] = {
            "seconds": [round(r["seconds"], 3) for r in results[n]],
            "ticks": len(queries), "runs": last["runs"], "statements": total_queries,
            "runs_per_tick": median(runs_per_tick), "tick_seconds_median": round(per_tick_s, 4),
        }
        if last["runs"] != 2 * n:
            fig.notes.append(f"{n} sources gave {last['runs']} runs, expected {2 * n}")
    tick_small = fig.raw[f"{small}_sources"]["tick_seconds_median"]
    tick_large = fig.raw[f"{large}_sources"]["tick_seconds_median"]
    fig.add(f"one tick at {large:,} sources", ratio(tick_large, tick_small), "1.0 (flat)",
            f"one tick at {small:,} sources")
    fig.notes.append(f"measured per batch of at most {BATCH} sources (dispatch_due); beat's "
                     f"tick (dispatch_backlog) keeps taking batches while they come back full, "
                     f"within {TICK_BUDGET_SECONDS:.0f} s, so {large:,} due sources take "
                     f"{large // BATCH} batches in one or two ticks")
    return fig
