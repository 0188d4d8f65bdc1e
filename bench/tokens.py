"""Figure 1: token stampede, expiry under steady load, and the cost of a cached token read.

Worker processes (8 x 16 threads) ask for the tokens of cold sources at the same instant; the fake
counts the token requests it answered (ideal: one per source). Then, with tokens whose life is
compressed to two seconds (the cache keeps a token for half its life when the life is shorter
than twice the margin, so it expires every second), every thread keeps asking for tokens for 24
expiries: each source should cost exactly 24 token requests. Finally, one thread reads a cached
token (``token_for_source``: a GET, and a Fernet decrypt the first time a process sees a token)
against a bare Redis ``GET`` of the same key and against the plaintext read of before (GET + JSON
of an unencrypted copy), interleaved.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections import Counter
from typing import Any

from bench.harness import (
    BenchEnv,
    FakeZoomProcess,
    Figure,
    WaitStart,
    create_sources,
    median,
    percentile,
    ratio,
    run_processes,
)

# Token life in the steady phase (seconds) and the refresh margin: the cache keeps a token for
# min(margin, life / 2) less than its life, so it expires every second.
STEADY_LIFETIME = 2
STEADY_MARGIN = 1


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _caller_cold(sources: list[uuid.UUID], start: threading.Barrier,
                 seen: dict[str, Counter[str]], errors: list[str], lock: threading.Lock
                 ) -> None:
    from worker.clients import token_for_source

    start.wait()
    for sid in sources:
        try:
            token = token_for_source(sid)
        except Exception as exc:  # reported, not raised: one failure must not hide the count
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
            continue
        with lock:
            seen[str(sid)][_digest(token.access_token)] += 1


def _caller_steady(sources: list[uuid.UUID], start: threading.Barrier, until: list[float],
                   index: int, calls: list[int], errors: list[str], lock: threading.Lock
                   ) -> None:
    from worker.clients import token_for_source

    rng = random.Random(index)
    start.wait()
    n = 0
    while time.time() < until[0]:
        sid = sources[rng.randrange(len(sources))]
        try:
            token_for_source(sid)
        except Exception as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
        n += 1
    with lock:
        calls.append(n)


def token_worker(arg: dict[str, Any], wait_start: WaitStart) -> dict[str, Any]:
    """One worker process: ``threads`` threads per phase, phases in step with the parent."""
    from worker.clients import get_token_cache

    get_token_cache()  # build the pooled HTTP client and Redis client before the clock starts
    all_sources = [uuid.UUID(s) for s in arg["sources"]]
    barrier = arg["barrier"]
    threads = int(arg["threads"])
    out: dict[str, Any] = {}
    wait_start()
    for phase in arg["phases"]:
        barrier.wait(timeout=600)
        sources = all_sources[: phase["sources"]]
        lock = threading.Lock()
        errors: list[str] = []
        start = threading.Barrier(threads)
        if phase["kind"] == "cold":
            order = list(sources)
            # Same order in every caller: all 128 callers stampede each source together.
            random.Random(7).shuffle(order)
            seen: dict[str, Counter[str]] = {str(s): Counter() for s in sources}
            workers = [threading.Thread(target=_caller_cold,
                                        args=(order, start, seen, errors, lock))
                       for _ in range(threads)]
            for t in workers:
                t.start()
            for t in workers:
                t.join()
            out[phase["name"]] = {"tokens": {s: dict(c) for s, c in seen.items()},
                                  "errors": errors[:5], "error_count": len(errors)}
        else:
            # Every process leaves the barrier together, so the deadlines agree.
            until = [time.time() + float(phase["seconds"])]
            calls: list[int] = []
            workers = [threading.Thread(target=_caller_steady,
                                        args=(sources, start, until, arg["index"] * 1000 + i,
                                              calls, errors, lock))
                       for i in range(threads)]
            for t in workers:
                t.start()
            for t in workers:
                t.join()
            out[phase["name"]] = {"calls": sum(calls), "errors": errors[:5],
                                  "error_count": len(errors)}
        barrier.wait(timeout=600)
    return out


def _token_requests_by_client(stats: dict[str, Any]) -> dict[str, int]:
    return {cid: int(v["total"]) for cid, v in stats.get("token_requests", {}).items()}


def run(env: BenchEnv) -> Figure:
    import multiprocessing as mp

    from fakezoom.config import AccountSpec, AppSpec, FakeZoomConfig

    fig = Figure("tokens", "Token stampede: requests to Zoom's token endpoint per source")
    procs, threads = (4, 8) if env.quick else (8, 16)
    n_sources = 10 if env.quick else 50
    expiries = 6 if env.quick else 24
    tiny = AccountSpec(users=2, groups=0, custom_roles=0, days=1, events_per_user_per_day=0,
                       meetings_per_host_per_day=0, operation_logs_per_day=0,
                       apps=[AppSpec(kind="s2s")])
    config = FakeZoomConfig(seed=11, accounts=[tiny] * n_sources)
    fig.raw.update(processes=procs, threads=threads, sources=n_sources, expiries=expiries,
                   steady_token_lifetime_s=STEADY_LIFETIME, steady_margin_s=STEADY_MARGIN)

    with FakeZoomProcess(config) as fake:
        # The margin only matters in the steady phase (3600 s tokens never near it elsewhere).
        env.point_at(fake, AI_TOKEN_REFRESH_MARGIN_SECONDS=str(STEADY_MARGIN))
        sources = create_sources(env.engine, fake.accounts)
        client_to_source = {acc["apps"][0]["client_id"]: str(sid)
                            for acc, sid in zip(fake.accounts, sources, strict=True)}

        phases: list[dict[str, Any]] = []
        for r in range(env.repeats):
            phases.append({"name": f"cold1#{r}", "kind": "cold", "sources": 1})
            phases.append({"name": f"cold{n_sources}#{r}", "kind": "cold",
                           "sources": n_sources})
        steady_seconds = expiries * (STEADY_LIFETIME - STEADY_MARGIN) - 0.5
        phases.append({"name": "steady", "kind": "steady", "sources": n_sources,
                       "seconds": steady_seconds})

        ctx = mp.get_context("spawn")
        barrier = ctx.Barrier(procs + 1)
        observed: dict[str, dict[str, int]] = {}
        orchestration_error: list[BaseException] = []

        def orchestrate() -> None:
            try:
                for phase in phases:
                    env.flush_redis()
                    if phase["kind"] == "steady":
                        fake.configure(token_lifetime=STEADY_LIFETIME)
                    fake.reset_stats()
                    barrier.wait(timeout=600)
                    barrier.wait(timeout=600)
                    observed[phase["name"]] = _token_requests_by_client(fake.stats())
            except BaseException as exc:  # surfaces in the main thread below
                orchestration_error.append(exc)
                barrier.abort()

        conductor = threading.Thread(target=orchestrate, daemon=True)
        conductor.start()
        args = [{"index": i, "sources": [str(s) for s in sources], "threads": threads,
                 "barrier": barrier, "phases": phases} for i in range(procs)]
        run_result = run_processes(token_worker, args, timeout=900)
        conductor.join(30)
        if orchestration_error:
            raise orchestration_error[0]
        run_result.raise_errors()
        env.flush_redis()
        fake.configure(token_lifetime=3600)
        latency = _latency(env, sources[0])

    results = run_result.values
    # Cold stampedes: token requests per source (ideal 1) and distinct tokens callers saw.
    for label, n in (("1 source", 1), (f"{n_sources} sources", n_sources)):
        per_run, distinct_max, errors = [], 0, 0
        for r in range(env.repeats):
            name = f"cold{n}#{r}"
            counts = observed.get(name, {})
            per_run.append(sum(counts.values()) / n)
            for res in results:
                errors += res[name]["error_count"]
                distinct_max = max(distinct_max, *(len(v) for v in res[name]["tokens"].values()))
            fig.raw[f"{name}_token_requests"] = sum(counts.values())
        fig.add(f"cold stampede, {label}: token requests per source", median(per_run), "1",
                f"{procs}x{threads} callers at once; median of {env.repeats}", unit="n")
        fig.raw[f"cold {label} distinct tokens per source (max over processes)"] = distinct_max
        fig.raw[f"cold {label} caller errors"] = errors
        if errors:
            fig.notes.append(f"cold {label}: {errors} callers got an error")

    steady = observed.get("steady", {})
    per_source = [steady.get(cid, 0) for cid in client_to_source]
    calls = sum(r["steady"]["calls"] for r in results)
    steady_errors = sum(r["steady"]["error_count"] for r in results)
    fig.add(f"{expiries} expiries under load: token requests per source (mean)",
            sum(per_source) / len(per_source), f"{expiries} (one per expiry)",
            f"{calls} token reads by {procs}x{threads} threads", unit="n")
    fig.add("... worst source", max(per_source), f"<= {expiries}", unit="n")
    if max(per_source) < expiries:
        fig.notes.append(
            "fewer token requests than expiries: a cycle is the cache life plus the time to "
            "notice the expiry and refresh (tens of ms on two saturated cores), which is a "
            "visible share of a token compressed to 1 s and nothing of an hour; more than one "
            "request per expiry would have meant a stampede")
    fig.raw.update(steady_token_reads=calls, steady_errors=steady_errors,
                   steady_per_source=per_source,
                   steady_seconds=round(steady_seconds, 2))
    if steady_errors:
        fig.notes.append(f"steady phase: {steady_errors} token reads failed, e.g. "
                         f"{next(e for r in results for e in r['steady']['errors'])}")
    fig.add("cached token read p50", ratio(latency["cached_p50"], latency["bare_p50"]),
            "~1 (one round trip)", "bare Redis GET p50, same key, interleaved")
    fig.add("cached token read p99", ratio(latency["cached_p99"], latency["bare_p99"]), "~1",
            "bare Redis GET p99")
    fig.add("encrypted token read p50", ratio(latency["cached_p50"], latency["plain_p50"]),
            "~1", "plaintext token read p50 (GET + JSON), interleaved")
    fig.add("encrypted token read p99", ratio(latency["cached_p99"], latency["plain_p99"]),
            "~1", "plaintext token read p99")
    fig.add("... first read of a new token p50", ratio(latency["first_p50"],
            latency["plain_p50"]), "~1 (+ one decrypt)", "plaintext token read p50")
    fig.add("... first read of a new token p99", ratio(latency["first_p99"],
            latency["plain_p99"]), "~1 (+ one decrypt)", "plaintext token read p99")
    fig.raw["read_latency_us"] = latency
    return fig


def _latency(env: BenchEnv, source: uuid.UUID) -> dict[str, float]:
    """Reads of the same token, interleaved: a bare ``GET`` of the key; the plaintext read of
    before (a ``GET`` of the token's JSON plus decoding, from a side key); the cached read as
    shipped (``token_for_source``: one ``GET``, compared with the value this process decrypted
    before); and the first read of a new token (one ``GET`` plus a Fernet decrypt)."""
    from worker.clients import get_token_cache, token_for_source
    from worker.tokens.cache import AccessToken, token_key

    env.refresh_settings()
    cache = get_token_cache()
    token = token_for_source(source)  # fill the cache (a 3600 s token again)
    client = cache.redis
    key = token_key(str(source))
    plain_key = f"bench:plain-token:{source}"
    client.set(plain_key, token.to_json(), ex=600)
    n = 1000 if env.quick else 5000
    series: dict[str, list[float]] = {"cached": [], "bare": [], "plain": []}

    def plain_read() -> AccessToken:
        return AccessToken.from_json(client.get(plain_key) or b"")

    def first_read() -> AccessToken:
        # As the first read of a token this process has not decrypted before (a new token).
        cache._opened.clear()
        return token_for_source(source)

    reads = {"cached": lambda: token_for_source(source), "bare": lambda: client.get(key),
             "plain": plain_read, "first": first_read}
    series["first"] = []
    for read in reads.values():  # warm every path
        for _ in range(3):
            read()
    # Interleaved blocks of 100 so drift in the machine's load hits every series alike.
    for _ in range(n // 100):
        for name, read in reads.items():
            out = series[name]
            for _ in range(100):
                t0 = time.perf_counter_ns()
                read()
                out.append((time.perf_counter_ns() - t0) / 1000)
    client.delete(plain_key)
    result: dict[str, float] = {"reads": n}
    for name, values in series.items():
        result[f"{name}_p50"] = round(percentile(values, 50), 1)
        result[f"{name}_p99"] = round(percentile(values, 99), 1)
    return result
