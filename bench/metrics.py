"""Figure: the cost of a `/metrics` scrape as the run history grows. The scrape's Postgres part
(``StateCollector``: runs and connection tests by status, the oldest running run, deferred
chunks) timed over a history of N/10 runs and again over N (1.0 = flat in the history), and the
runs query against grouping the whole ``sync_run`` table, what the scrape did before.

The history is synthetic (one SQL insert): runs that ended every 30 s over the past N x 30 s,
plus a few hundred unfinished ones, then ``ANALYZE`` as autovacuum would (it is off on the bench
server).
"""

from __future__ import annotations

from typing import Any

from bench.harness import BenchEnv, Figure, bare_source, median, ratio, timed

ACTIVE = 300


def _seed(engine: Any, tenant_id: Any, source_id: Any, start: int, stop: int) -> None:
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO sync_run (id, tenant_id, source_id, kind, trigger, status, pages, seen,
                inserted, updated, unchanged, deleted, skipped, checkpoint, details, created_at,
                finished_at)
            SELECT gen_random_uuid(), :t, :s, (ARRAY['aggregation','activity','correlation'])
                [1 + i % 3], 'schedule', (ARRAY['succeeded','succeeded','succeeded','failed',
                'retryable','skipped'])[1 + i % 6], 0, 0, 0, 0, 0, 0, 0, '{}', '{}',
                now() - make_interval(secs => i * 30), now() - make_interval(secs => i * 30)
            FROM generate_series(CAST(:a AS integer), CAST(:b AS integer)) AS i
        """), {"t": tenant_id, "s": source_id, "a": start, "b": stop - 1})
        conn.execute(text("ANALYZE sync_run"))


def run(env: BenchEnv) -> Figure:
    from sqlalchemy import func, select, text
    from sqlmodel import Session, col

    from worker.kit.metrics import StateCollector
    from worker.models import RunKind, RunStatus, SyncRun

    n = 20_000 if env.quick else (1_000_000 if env.full else 300_000)
    fig = Figure("metrics", "a /metrics scrape over a growing run history")
    with Session(env.engine) as session:
        tenant_id, source_id = bare_source(session, "bench")
        session.add_all([SyncRun(tenant_id=tenant_id, source_id=source_id, kind=RunKind.ACTIVITY,
                                 status=(RunStatus.QUEUED, RunStatus.RUNNING,
                                         RunStatus.DEFERRED)[i % 3]) for i in range(ACTIVE)])
        session.commit()
    collector = StateCollector()
    repeats = max(env.repeats * 5, 15)

    def scrape() -> float:
        list(collector._postgres(False))  # warm: the pool's connection, the plan, the cache
        return median([timed(lambda: list(collector._postgres(False)))[0]
                       for _ in range(repeats)])

    _seed(env.engine, tenant_id, source_id, 1, n // 10 + 1)
    small = scrape()
    _seed(env.engine, tenant_id, source_id, n // 10 + 1, n + 1)
    large = scrape()
    whole = (select(col(SyncRun.kind), col(SyncRun.status), func.count())
             .group_by(col(SyncRun.kind), col(SyncRun.status)))
    with env.engine.connect() as conn:
        grouped = median([timed(lambda: conn.execute(whole).all())[0] for _ in range(repeats)])
        rows = conn.execute(text("SELECT count(*) FROM sync_run")).scalar_one()
    fig.add(f"scrape at {n:,} runs / at {n // 10:,}", ratio(large, small), "~1 (flat)",
            f"the same scrape over {n // 10:,} runs; median of {repeats}")
    fig.add(f"grouping all {rows:,} runs / the whole scrape", ratio(grouped, large), "> 1",
            "the scrape's Postgres part (4 queries) at that size")
    fig.raw = {"runs": rows, "scrape_small_s": small, "scrape_large_s": large,
               "group_all_s": grouped}
    return fig
