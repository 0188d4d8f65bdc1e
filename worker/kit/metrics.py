"""Prometheus metrics: counters the workers add to in Redis, state read when Prometheus scrapes.

Why counters live in Redis: the workers are Celery prefork children that come and go, on one or
several hosts; prometheus-client's multiprocess mode needs a shared directory per host and a
cleanup when each child dies. Here a count is one ``HINCRBY`` on a hash per figure (the field is
the label values), so whichever API replica is scraped exposes the totals of every worker.
Everything that is *state* (runs by status, the oldest running run, deferred chunks, queue depth)
is read from Postgres and the broker by ``StateCollector`` at scrape time: the workers do nothing
for those. Runs and connection tests by status are the unfinished ones plus those that ended in
the last ``RECENT`` (an hour), read through indexes: a scrape never groups the whole history.

Labels are queue, kind, status, category, outcome. Never a tenant or source id, unless the
operator opts in with ``AI_METRICS_PER_TENANT=true`` (one series per tenant grows with the
customer base). No label ever holds a secret: the values are enums, HTTP codes and, when opted
in, ids.

Counting must never break the work it counts: a Redis error while counting is logged at DEBUG and
dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import Select, func, or_, select
from sqlmodel import col

from worker.db import get_engine
from worker.kit.redis import client_for, get_redis
from worker.models.enums import RunKind, RunStatus
from worker.models.runs import ConnectionTest, SyncRun
from worker.queues import Queue
from worker.settings import get_settings

log = logging.getLogger(__name__)

PREFIX = "ai:metrics:"
ZOOM_REQUESTS = PREFIX + "zoom_requests"  # field: category|status[|source]
LIMITER_WAIT = PREFIX + "limiter_wait_seconds"  # field: category[|source]
TOKEN_REFRESHES = PREFIX + "token_refreshes"  # field: outcome[|source]
SEP = "|"
# Kombu's Redis transport keeps priority levels in sibling lists named queue + SEP + level.
_KOMBU_PRIORITY_SEP = "\x06\x16"
_KOMBU_PRIORITIES = (3, 6, 9)
# Waits shorter than this are the limiter's own bookkeeping, not a wait worth a write.
_MIN_WAIT_SECONDS = 0.001


def _per_tenant() -> bool:
    return get_settings().metrics_per_tenant


def _field(*parts: str, source: str | None = None) -> str:
    if source is not None and _per_tenant():
        parts = (*parts, source)
    return SEP.join(parts)


def record_zoom_response(source: str, category: str, status: int, waited: float = 0.0) -> None:
    """One answer from Zoom's API (any status; 429s are those with status 429), and how long the
    request waited for the account's rate limiter first. One pipelined round trip."""
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.hincrby(ZOOM_REQUESTS, _field(category, str(status), source=source), 1)
        if waited >= _MIN_WAIT_SECONDS:
            pipe.hincrbyfloat(LIMITER_WAIT, _field(category, source=source), round(waited, 6))
        pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.debug("metrics: could not count a zoom response: %s", type(exc).__name__)


def record_token_refresh(source: str, outcome: str) -> None:
    """A refresh at Zoom's token endpoint: ``ok``, ``refused`` (credentials) or ``error``."""
    try:
        get_redis().hincrby(TOKEN_REFRESHES, _field(outcome, source=source), 1)
    except (redis.RedisError, OSError) as exc:
        log.debug("metrics: could not count a token refresh: %s", type(exc).__name__)


# -- scrape time ----------------------------------------------------------------------------


def _hash(client: redis.Redis, key: str) -> dict[str, float]:
    raw: dict[Any, Any] = client.hgetall(key)
    out: dict[str, float] = {}
    for field, value in raw.items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        out[name] = float(value)
    return out


def _split(field: str, names: tuple[str, ...], per_tenant: bool) -> list[str] | None:
    """Label values of a hash field; a field with a source part is folded into the plain series
    unless the operator opted in (the setting may have changed since it was written)."""
    parts = field.split(SEP)
    if len(parts) < len(names):
        return None
    values = parts[: len(names)]
    if per_tenant:
        values.append(parts[len(names)] if len(parts) > len(names) else "")
    return values


def _counter(name: str, doc: str, labels: tuple[str, ...], data: dict[str, float],
             per_tenant: bool, who: str) -> CounterMetricFamily:
    names = [*labels, who] if per_tenant else list(labels)
    family = CounterMetricFamily(name, doc, labels=names)
    folded: dict[tuple[str, ...], float] = {}
    for field, value in data.items():
        values = _split(field, labels, per_tenant)
        if values is not None:
            key = tuple(values)
            folded[key] = folded.get(key, 0.0) + value
    for key, value in sorted(folded.items()):
        family.add_metric(list(key), value)
    return family


def _queue_depths(client: redis.Redis) -> dict[str, int]:
    pipe = client.pipeline(transaction=False)
    names = [str(q) for q in Queue]
    for name in names:
        pipe.llen(name)
        for level in _KOMBU_PRIORITIES:
            pipe.llen(f"{name}{_KOMBU_PRIORITY_SEP}{level}")
    lengths = pipe.execute()
    step = 1 + len(_KOMBU_PRIORITIES)
    return {name: int(sum(lengths[i * step:(i + 1) * step])) for i, name in enumerate(names)}


# What `ai_runs` and `ai_connection_tests` count besides the unfinished rows: what ended within
# this window. A window rather than the whole history: the tables grow without bound and a
# scrape (every 15 s or so) must not group them all; an hour answers "what failed lately".
RECENT = timedelta(hours=1)
# The complement of `worker.runs.lifecycle.TERMINAL` (a layer above this one; a test holds them
# together): a deferred run has not ended, it resumes later.
NOT_ENDED = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.DEFERRED)


def run_counts(since: datetime, per_tenant: bool = False) -> Select[Any]:
    """Runs not ended (through ``ix_sync_run_status``: few rows) or ended since ``since``
    (through ``ix_sync_run_finished_at``), by kind and status (and tenant)."""
    cols: list[Any] = [col(SyncRun.kind), col(SyncRun.status)]
    if per_tenant:
        cols.append(col(SyncRun.tenant_id))
    return (select(*cols, func.count())
            .where(or_(col(SyncRun.status).in_(NOT_ENDED), col(SyncRun.finished_at) >= since))
            .group_by(*cols))


def connection_test_counts(since: datetime, per_tenant: bool = False) -> Select[Any]:
    """Connection tests not finished (``finished_at`` is set exactly when one ends) or finished
    since ``since``, both through ``ix_connection_test_finished_at``, by status (and tenant)."""
    cols: list[Any] = [col(ConnectionTest.status)]
    if per_tenant:
        cols.append(col(ConnectionTest.tenant_id))
    return (select(*cols, func.count())
            .where(or_(col(ConnectionTest.finished_at).is_(None),
                       col(ConnectionTest.finished_at) >= since))
            .group_by(*cols))


class StateCollector(Collector):
    """Reads everything at scrape time: Postgres (runs), the broker (queues), Redis (counters).

    A part whose store is down is left out and ``ai_metrics_source_up{source=...}`` says 0, so a
    Postgres outage still lets Prometheus see the Redis figures (and the outage).
    """

    def collect(self) -> Iterator[Metric]:
        settings = get_settings()
        per_tenant = settings.metrics_per_tenant
        up = GaugeMetricFamily("ai_metrics_source_up",
                               "1 when the store behind a group of figures answered this scrape",
                               labels=["source"])
        try:
            yield from self._postgres(per_tenant)
            up.add_metric(["postgres"], 1)
        except Exception as exc:  # any driver error: report the outage, keep the rest
            log.warning("metrics: postgres unreadable: %s", type(exc).__name__)
            up.add_metric(["postgres"], 0)
        try:
            yield from self._redis(per_tenant)
            up.add_metric(["redis"], 1)
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics: redis unreadable: %s", type(exc).__name__)
            up.add_metric(["redis"], 0)
        try:
            depth = GaugeMetricFamily("ai_queue_depth",
                                      "Tasks waiting in the broker, per Celery queue",
                                      labels=["queue"])
            for name, n in _queue_depths(client_for(settings.broker_url)).items():
                depth.add_metric([name], n)
            yield depth
            up.add_metric(["broker"], 1)
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics: broker unreadable: %s", type(exc).__name__)
            up.add_metric(["broker"], 0)
        yield up

    def _postgres(self, per_tenant: bool) -> Iterable[Metric]:
        extra = ["tenant"] if per_tenant else []
        window = f"{int(RECENT.total_seconds() // 60)} minutes"
        runs = GaugeMetricFamily(
            "ai_runs", f"Sync runs by kind and status: every run not ended (queued, running, "
            f"deferred), and the runs that ended in the last {window}", labels=["kind", "status",
                                                                                 *extra])
        tests = GaugeMetricFamily(
            "ai_connection_tests", f"Connection tests by status: every test not finished, and "
            f"those that finished in the last {window}", labels=["status", *extra])
        oldest = GaugeMetricFamily("ai_oldest_running_run_age_seconds",
                                   "Age of the oldest run still running, by kind (0: none)",
                                   labels=["kind"])
        deferred = GaugeMetricFamily("ai_deferred_chunks",
                                     "Activity chunks waiting to resume after a rate cap")
        since = datetime.now(UTC) - RECENT
        with get_engine().connect() as conn:
            run_rows = conn.execute(run_counts(since, per_tenant)).all()
            test_rows = conn.execute(connection_test_counts(since, per_tenant)).all()
            started = conn.execute(
                select(col(SyncRun.kind), func.min(SyncRun.started_at))
                .where(col(SyncRun.status) == RunStatus.RUNNING)
                .group_by(col(SyncRun.kind))).all()
            n_deferred = conn.execute(
                select(func.count()).select_from(SyncRun)
                .where(col(SyncRun.status) == RunStatus.DEFERRED,
                       col(SyncRun.kind) == RunKind.ACTIVITY,
                       col(SyncRun.parent_id).is_not(None))).scalar_one()
        for *labels, n in run_rows:
            runs.add_metric([str(v) for v in labels], n)
        for *labels, n in test_rows:
            tests.add_metric([str(v) for v in labels], n)
        now = time.time()
        ages = {str(kind): now - ts.timestamp() for kind, ts in started if ts is not None}
        for kind in RunKind:
            oldest.add_metric([str(kind)], max(0.0, ages.get(str(kind), 0.0)))
        deferred.add_metric([], n_deferred)
        return [runs, tests, oldest, deferred]

    def _redis(self, per_tenant: bool) -> Iterable[Metric]:
        client = get_redis()
        return [
            _counter("ai_zoom_requests", "Answers from Zoom's API, by rate-limit category and "
                     "HTTP status (429: rate limited)", ("category", "status"),
                     _hash(client, ZOOM_REQUESTS), per_tenant, "source"),
            _counter("ai_zoom_limiter_wait_seconds", "Time requests waited for the account's "
                     "shared rate limiter, by category", ("category",),
                     _hash(client, LIMITER_WAIT), per_tenant, "source"),
            _counter("ai_token_refreshes", "Access-token requests to Zoom's OAuth endpoint, by "
                     "outcome (ok, refused, error)", ("outcome",),
                     _hash(client, TOKEN_REFRESHES), per_tenant, "source"),
        ]


def registry() -> CollectorRegistry:
    """A registry with the application's figures only (no per-process Python figures: the API
    process that answers the scrape says nothing about the workers)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StateCollector())
    return reg
