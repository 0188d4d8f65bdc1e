"""Figure: the access review at size. CSV export peak RSS at 100,000 accounts divided by the
same at 10,000 (1.0 = memory flat in the accounts), export time, and the render time of the
report page of a 10,000-account tenant.

Two tenants are seeded with COPY-free bulk inserts: accounts (a tenth licensed, a few admins,
two groups), an identity for most of them (some terminated), and two sign-ins for half of them
spread over 120 days, so every grouped subquery of the review has work to do. Each export runs
in a fresh process (``python -m bench.reports export TENANT``) that reports its own peak RSS, so
one measurement's heap cannot flatter the next.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

from bench.harness import ROOT, BenchEnv, Figure, bare_source, median, ratio

BATCH = 5_000


def seed_tenant(engine: Any, name: str, accounts: int) -> uuid.UUID:
    from sqlalchemy import insert
    from sqlmodel import Session

    from worker.models import (
        AccountCorrelation,
        ActivityEvent,
        Identity,
        ZoomGroup,
        ZoomUser,
        utcnow,
    )

    now = utcnow()
    with Session(engine) as session:
        t, s = bare_source(session, name)
        session.add_all([ZoomGroup(tenant_id=t, source_id=s, zoom_id=f"g{g}", name=f"Group {g}")
                         for g in range(2)])
        for start in range(0, accounts, BATCH):
            users, people, links, events = [], [], [], []
            for i in range(start, min(start + BATCH, accounts)):
                zid = f"u{i:07d}"
                email = f"user{i}@{name}.example"
                users.append({
                    "tenant_id": t, "source_id": s, "zoom_id": zid, "email": email,
                    "display_name": f"User {i}", "type": 2 if i % 10 == 0 else 1,
                    "status": "pending" if i % 50 == 7 else "active",
                    "role_id": "1" if i % 200 == 3 else "2", "group_ids": [f"g{i % 2}"],
                    "zoom_created_at": now - timedelta(days=400 - i % 300),
                    "first_seen_at": now, "last_seen_at": now, "custom_attributes": [],
                })
                if i % 20 != 5:  # a twentieth are orphans
                    pid = uuid.uuid4()
                    people.append({
                        "id": pid, "tenant_id": t, "external_id": f"hr-{i}", "email": email,
                        "email_normalized": email, "display_name": f"User {i}",
                        "attributes": {}, "status": "terminated" if i % 100 == 9 else "active",
                        "created_at": now, "updated_at": now,
                    })
                    links.append({"id": uuid.uuid4(), "tenant_id": t, "source_id": s,
                                  "user_zoom_id": zid, "identity_id": pid, "method": "email",
                                  "correlated_at": now})
                if i % 2 == 0:
                    for k in range(2):
                        events.append({
                            "tenant_id": t, "source_id": s, "event_key": f"{zid}-{k}",
                            "email": email, "type": "Sign in",
                            "time": now - timedelta(days=(i * 7 + k * 31) % 120, minutes=k),
                        })
            session.execute(insert(ZoomUser), users)
            if people:
                session.execute(insert(Identity), people)
                session.execute(insert(AccountCorrelation), links)
            if events:
                session.execute(insert(ActivityEvent), events)
        session.commit()
        return t


def _export_child(tenant_id: str) -> None:
    """In a fresh process: stream the CSV of the tenant to /dev/null, print peak RSS and time."""
    from sqlmodel import Session

    from worker.db import get_engine
    from worker.models import utcnow
    from worker.reports.export import write_report
    from worker.reports.findings import ReviewParams

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    with Session(get_engine()) as session, open(os.devnull, "w") as sink:
        summary = write_report(session, ReviewParams(tenant_id=uuid.UUID(tenant_id),
                                                     now=utcnow()), "csv", sink)
    print(json.dumps({
        "accounts": summary.accounts,
        "seconds": time.perf_counter() - started,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rss_before": baseline,
    }))


def _export(tenant_id: uuid.UUID) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.reports", "export", str(tenant_id)],
                         cwd=ROOT, capture_output=True, text=True, check=True, env=os.environ)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _render_seconds(env: BenchEnv, tenant_id: uuid.UUID) -> tuple[float, float, int]:
    from sqlmodel import Session

    from worker.models import utcnow
    from worker.reports import page
    from worker.reports.findings import ReviewParams, build_review

    times, cpu, size = [], [], 0
    # The first render compiles the template and the statement, once per server process.
    for _ in range(env.repeats + 1):
        with Session(env.engine) as session:
            started, cpu_started = time.perf_counter(), time.process_time()
            html, _summary = page.render(session, build_review(
                session, ReviewParams(tenant_id=tenant_id, now=utcnow())))
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
            size = len(html)
    return median(times[1:]), median(cpu[1:]), size


def _filtered_page_seconds(env: BenchEnv, tenant_id: uuid.UUID, pushed: bool) -> float:
    """A JSON page (100 accounts) of ``?finding=unused_licence``: the page's accounts chosen in
    SQL (``pushed``, what the API does) or the whole tenant aggregated and then filtered."""
    from sqlmodel import Session

    from worker.models import utcnow
    from worker.reports.findings import ReviewParams, build_review, iter_rows

    times = []
    for _ in range(env.repeats):
        with Session(env.engine) as session:
            started = time.perf_counter()
            params = ReviewParams(tenant_id=tenant_id, now=utcnow())
            page = (None, 101) if pushed else None
            review = build_review(session, params, page=page,
                                  finding="unused_licence" if pushed else None)
            rows = list(iter_rows(session, review, finding="unused_licence", limit=101))
            times.append(time.perf_counter() - started)
            assert len(rows) == 101, len(rows)
    return median(times)


def run(env: BenchEnv) -> Figure:
    fig = Figure("reports", "access review: CSV export memory, report page render")
    small, large = (1_000, 10_000) if env.quick else (10_000, 100_000)
    tenants = {n: seed_tenant(env.engine, f"bench-review-{n}", n) for n in (small, large)}
    with env.engine.connect() as conn:
        from sqlalchemy import text

        conn.execute(text("ANALYZE"))
        conn.commit()
    exports = {n: _export(t) for n, t in tenants.items()}
    for n in (small, large):
        assert exports[n]["accounts"] == n, exports[n]
    mib = {n: exports[n]["peak_rss"] / 2**20 for n in exports}
    fig.add(f"CSV export peak RSS at {large:,} / at {small:,} accounts",
            ratio(mib[large], mib[small]), "1.0 (flat)",
            note=f"{mib[small]:.0f} MiB and {mib[large]:.0f} MiB")
    fig.add(f"CSV export of {large:,} accounts (s)", exports[large]["seconds"], "-", unit="n")
    fig.add(f"CSV export accounts/s at {large:,}",
            ratio(large, exports[large]["seconds"]), "-", unit="n")
    seconds, cpu, size = _render_seconds(env, tenants[small])
    fig.add(f"report page render, {small:,}-account tenant (s)", seconds, "< 1", unit="n",
            note=f"{size / 1024:.0f} KiB of HTML; load average {os.getloadavg()[0]:.1f}")
    # The API process's own share (the rest is Postgres and waiting for a core).
    fig.add(f"report page render CPU in the API process, {small:,} accounts (s)", cpu, "-",
            unit="n")
    pushed = _filtered_page_seconds(env, tenants[large], pushed=True)
    whole = _filtered_page_seconds(env, tenants[large], pushed=False)
    fig.add(f"JSON page of ?finding=unused_licence at {large:,} accounts (s)", pushed, "-",
            unit="n", note=f"{whole:.2f} s when the whole tenant is aggregated first")
    return fig


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "export":
        _export_child(sys.argv[2])
    else:
        sys.exit("usage: python -m bench.reports export TENANT_ID (the bench runs it)")
