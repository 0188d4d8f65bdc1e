"""Figure 3: the sign-in activity pipeline against a raw COPY of the same rows, and the worker's
peak memory as the volume grows.

The fake serves one account's sign-in events (90 days, the default backfill) with its rate
limits off; the worker's own limiter is out of the way too (the client gets ``NoLimiter``), so
this measures our code: planning, paging, parsing, keying, upserting, summaries, watermarks.
One fresh worker process runs the plan's chain of monthly chunks (``run_chunk``), and reports its
peak RSS. The baseline is a COPY, from memory, of exactly the rows the pipeline stored (same
columns, same table and indexes, one transaction), in the same run. Below 300,000 events the
pipeline, the fetch-only paging and the COPY each run ``--repeats`` times (3) and the median
run is reported; the larger size runs once.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from bench.harness import (
    BenchEnv,
    FakeZoomProcess,
    Figure,
    WaitStart,
    backend_cpu,
    backend_cpu_delta,
    cpu_seconds,
    create_sources,
    median_by,
    ratio,
    run_processes,
    tenant_of,
)

DAYS = 90
COLUMNS = ("tenant_id", "source_id", "event_key", "email", "time", "type", "ip_address",
           "client_type", "version")
# The day summaries the pipeline also writes (one row per user and day with activity).
SUMMARY_COLUMNS = ("tenant_id", "source_id", "email", "day", "sign_ins", "meetings_hosted",
                   "meetings_attended", "meeting_minutes", "last_activity_at", "updated_at",
                   "details")


def _config(events: int, today: dt.date) -> Any:
    from fakezoom.config import AccountSpec, AppSpec, FakeZoomConfig

    # About one sign-in or sign-out per signing user per day (7% of users are pending and
    # never sign in): the user count follows the volume.
    users = max(50, round(events / DAYS / 0.93))
    spec = AccountSpec(users=users, groups=0, custom_roles=0, days=DAYS,
                       events_per_user_per_day=1.0, meetings_per_host_per_day=0,
                       operation_logs_per_day=0, apps=[AppSpec(kind="s2s")])
    return FakeZoomConfig(seed=31, plan="business", accounts=[spec], rate_limits_enabled=False,
                          anchor_date=today.isoformat())


def chain_worker(arg: dict[str, Any], wait_start: WaitStart) -> dict[str, Any]:
    """Plan the sign-in sync and run its chunks in order, as the task chain would."""
    from sqlmodel import Session, col, select

    from worker.activity.planner import plan_activity
    from worker.activity.service import run_chunk
    from worker.clients import get_http, get_token_cache, token_for_source
    from worker.db import get_engine
    from worker.models import RunKind, RunStatus, RunTrigger, Stream, SyncRun
    from worker.zoom.client import NoLimiter, ZoomClient

    if arg.get("copy_threshold") is not None:
        # What-if only (never the headline figure): the same pipeline with the bulk upsert's
        # COPY path taken for Zoom's 300-row pages.
        import functools

        import worker.activity.service as activity
        from worker.kit.upsert import upsert

        # The service's own name for the write path, swapped for this child process only.
        vars(activity)["upsert"] = functools.partial(upsert,
                                            copy_threshold=int(arg["copy_threshold"]))
    source_id = uuid.UUID(arg["source"])
    tenant_id = uuid.UUID(arg["tenant"])
    cache = get_token_cache()
    token_for_source(source_id)
    client = ZoomClient(str(source_id), cache.for_source(str(source_id)), NoLimiter(),
                        get_http(), arg["api_url"])
    engine = get_engine()
    with Session(engine) as session:
        plan = SyncRun(tenant_id=tenant_id, source_id=source_id, kind=RunKind.ACTIVITY,
                       trigger=RunTrigger.CLI, details={"streams": [str(Stream.SIGNINS)]})
        session.add(plan)
        session.commit()
        plan_id = plan.id
    with engine.connect() as conn:
        pg_before = backend_cpu(conn)
    wait_start()
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    plan_activity(plan_id, enqueue=False)
    chunks = 0
    while True:
        with Session(engine) as session:
            nxt = session.exec(
                select(SyncRun.id).where(SyncRun.parent_id == plan_id,
                                         SyncRun.status == RunStatus.QUEUED)
                .order_by(col(SyncRun.window_start)).limit(1)).first()
        if nxt is None:
            break
        run = run_chunk(nxt, client=client, enqueue=False)
        if run.status != RunStatus.SUCCEEDED:
            raise RuntimeError(f"chunk {nxt} ended {run.status}: {run.error_message}")
        chunks += 1
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    with engine.connect() as conn:
        pg_cpu = backend_cpu_delta(pg_before, backend_cpu(conn))
    return {"seconds": seconds, "chunks": chunks, "cpu_seconds": cpu, "pg_cpu_seconds": pg_cpu}


def fetch_only_worker(arg: dict[str, Any], wait_start: WaitStart) -> dict[str, Any]:
    """The same requests as the pipeline's chunks (one monthly window each), items counted and
    dropped: what paging the fake costs without the database."""
    from worker.clients import get_http, get_token_cache, token_for_source
    from worker.zoom.client import NoLimiter, ZoomClient

    source_id = uuid.UUID(arg["source"])
    cache = get_token_cache()
    token_for_source(source_id)
    client = ZoomClient(str(source_id), cache.for_source(str(source_id)), NoLimiter(),
                        get_http(), arg["api_url"])
    wait_start()
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    items = 0
    for first, last in arg["windows"]:
        for page in client.iter_pages("/report/activities", {"from": first, "to": last},
                                      "activity_logs"):
            items += len(page.items)
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": cpu_seconds() - cpu0,
            "items": items}


def _windows(env: BenchEnv) -> list[tuple[str, str]]:
    """The (from, to) of each chunk the plan made, as the chunks asked for them."""
    from sqlalchemy import text

    with env.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT window_start, window_end FROM sync_run WHERE parent_id IS NOT NULL "
            "ORDER BY window_start")).all()
    return [(start.astimezone(dt.UTC).date().isoformat(),
             (end.astimezone(dt.UTC) - dt.timedelta(microseconds=1)).date().isoformat())
            for start, end in rows]


Rows = list[tuple[Any, ...]]


def _stored_rows(env: BenchEnv, table: str = "activity_event",
                 columns: tuple[str, ...] = COLUMNS) -> Rows:
    from sqlalchemy import text

    # json as text: COPY takes the stored text back as it is.
    cols = ", ".join(f"{c}::text" if c == "details" else c for c in columns)
    with env.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT {cols} FROM {table}"))]


def _raw_copy(env: BenchEnv, tables: list[tuple[str, tuple[str, ...], Rows]]
              ) -> tuple[float, float]:
    """Seconds to COPY each table's ``rows`` into it, emptied, in one transaction, and the CPU
    seconds it took: this (client) process's plus its Postgres backend's."""
    from sqlalchemy import text

    with env.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(name for name, _, _ in tables)}"))
    with env.engine.connect() as conn:
        backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        raw = conn.connection.driver_connection
        assert raw is not None
        t0, cpu0, pg0 = time.perf_counter(), cpu_seconds(), cpu_seconds(backend)
        for name, columns, rows in tables:
            with raw.cursor() as cur, cur.copy(
                    f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        raw.commit()
        return (time.perf_counter() - t0,
                cpu_seconds() - cpu0 + cpu_seconds(backend) - pg0)


def _one_size(env: BenchEnv, events_target: int, today: dt.date,
              copy_threshold: int | None = None) -> dict[str, Any]:
    from sqlalchemy import func, select

    from worker.models import ActivityEvent

    # Below the large size every measurement is repeated and its median taken (the bench's
    # convention; one run of a 100k-event pipeline is a few seconds, within this machine's
    # noise); the large size runs once.
    repeats = env.repeats if events_target < 300_000 else 1
    config = _config(events_target, today)
    runs: list[tuple[dict[str, Any], int, int]] = []  # (result, pages, peak RSS) per run
    with FakeZoomProcess(config) as fake:
        env.point_at(fake)
        for _ in range(repeats):
            env.reset_data()  # the next run finds an empty window again, as the first did
            (sid,) = create_sources(env.engine, fake.accounts)
            tenant = tenant_of(env.engine, sid)
            fake.reset_stats()
            result = run_processes(chain_worker, [{"source": str(sid), "tenant": str(tenant),
                                                   "api_url": fake.api_url,
                                                   "copy_threshold": copy_threshold}],
                                   timeout=3600)
            result.raise_errors()
            runs.append((result.values[0], int(fake.stats()["pages_total"]),
                         result.results[0]["peak_rss"]))
        fetches = []
        for _ in range(repeats):
            fetch = run_processes(fetch_only_worker, [{"source": str(sid),
                                                       "api_url": fake.api_url,
                                                       "windows": _windows(env)}],
                                  timeout=3600)
            fetch.raise_errors()
            fetches.append(fetch.values[0])
    value, pages, peak_rss = median_by(runs, lambda run: run[0]["seconds"])
    fetched = median_by(fetches, lambda f: f["seconds"])
    with env.engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(ActivityEvent)).scalar_one()
    # The baseline gets exactly the rows the pipeline wrote (its last run), already in memory.
    rows = _stored_rows(env)
    summaries = _stored_rows(env, "user_daily_summary", SUMMARY_COLUMNS)
    # Context, not the goal's baseline: the pipeline also writes the events' day summaries.
    with_summaries = median_by([_raw_copy(env, [
        ("activity_event", COLUMNS, rows), ("user_daily_summary", SUMMARY_COLUMNS, summaries)])
        for _ in range(repeats)], lambda copy: copy[0])[0]
    copy_seconds, copy_cpu = median_by([_raw_copy(env, [("activity_event", COLUMNS, rows)])
                                         for _ in range(repeats)], lambda copy: copy[0])
    summary_rows = len(summaries)
    del rows, summaries
    per_million = 1_000_000 / max(1, stored)
    return {"events": stored, "pages": pages, "chunks": value["chunks"],
            "pipeline_seconds": value["seconds"], "copy_seconds": copy_seconds,
            "summary_rows": summary_rows, "copy_with_summaries_seconds": with_summaries,
            "fetch_only_seconds": fetched["seconds"], "fetch_only_items": fetched["items"],
            "pipeline_per_s": stored / value["seconds"], "copy_per_s": stored / copy_seconds,
            "fetch_only_per_s": stored / fetched["seconds"],
            "worker_cpu_s_per_million": value["cpu_seconds"] * per_million,
            "worker_pg_cpu_s_per_million": value["pg_cpu_seconds"] * per_million,
            "fetch_only_cpu_s_per_million": fetched["cpu_seconds"] * per_million,
            "copy_cpu_s_per_million": copy_cpu * per_million,
            "runs": repeats, "peak_rss_mib": peak_rss / 2**20}


def run(env: BenchEnv) -> Figure:
    fig = Figure("ingest", "Ingestion: sign-in pipeline against raw COPY; worker memory")
    if env.quick:
        small, large = 10_000, 50_000
    elif env.full:
        small, large = 100_000, 1_000_000
    else:
        small, large = 100_000, 300_000
    today = dt.datetime.now(dt.UTC).date()
    out: dict[int, dict[str, Any]] = {}
    for n in (small, large):
        out[n] = _one_size(env, n, today)
        fig.raw[f"{n}_events"] = {k: round(v, 2) if isinstance(v, float) else v
                                  for k, v in out[n].items()}
    for n in (small, large):
        r = out[n]
        fig.add(f"{r['events']:,} events: records/s into Postgres",
                ratio(r["pipeline_per_s"], r["copy_per_s"]), ">= 0.5",
                "raw COPY of the same rows from memory")
        fig.add("... fetch-only records/s (the fake's floor)",
                ratio(r["fetch_only_per_s"], r["copy_per_s"]), "",
                "raw COPY of the same rows from memory")
        fig.add(f"... against raw COPY of the events and their {r['summary_rows']:,} "
                "day summaries", ratio(r["pipeline_per_s"],
                                       r["events"] / r["copy_with_summaries_seconds"]), "",
                "raw COPY of both tables' rows from memory (one transaction)")
        fig.add("... pipeline wall time",
                ratio(r["pipeline_seconds"], r["fetch_only_seconds"]), "<= 1.3",
                "paging the same windows without the database")
        fig.add("... worker CPU-seconds per million events",
                ratio(r["worker_cpu_s_per_million"], r["copy_cpu_s_per_million"]), "small",
                "CPU-s of the raw COPY (client + backend) per million")
        fig.add("... worker + its Postgres backends, CPU-seconds",
                ratio(r["worker_cpu_s_per_million"] + r["worker_pg_cpu_s_per_million"],
                      r["copy_cpu_s_per_million"]), "small",
                "CPU-s of the raw COPY (client + backend) per million")
    fig.add(f"peak worker RSS at {out[large]['events']:,} events",
            ratio(out[large]["peak_rss_mib"], out[small]["peak_rss_mib"]), "1.0 (flat)",
            f"the same at {out[small]['events']:,} events")
    # Why the ratio is low: Zoom pages hold at most 300 rows and the bulk upsert only takes its
    # COPY path from COPY_THRESHOLD rows, so every page goes through a 300-row INSERT that
    # SQLAlchemy compiles afresh. The same pipeline with the COPY path on 300-row pages:
    from worker.kit.upsert import COPY_THRESHOLD

    if COPY_THRESHOLD > 300:
        what_if = _one_size(env, small, today, copy_threshold=100)
        fig.raw["what_if_copy_threshold_100"] = {k: round(v, 2) if isinstance(v, float) else v
                                                 for k, v in what_if.items()}
        fig.add(f"what-if, COPY on 300-row pages, {what_if['events']:,} events",
                ratio(what_if["pipeline_per_s"], what_if["copy_per_s"]),
                "1.0 (0.75 for COPY+upsert)", "raw COPY of the same rows (not the product as "
                "shipped)")
    if not env.full and not env.quick:
        fig.notes.append("1,000,000 events runs with `python -m bench --only ingest --full` "
                         "(about six minutes here on its own)")
    return fig
