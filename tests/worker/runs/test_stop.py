"""A worker told to stop (SIGTERM to its main process, as `docker stop` does) mid-chunk: it
stops taking tasks, the chunk finishes its page, checkpoints and goes back to `queued` (not
`failed`, not `retryable`), the worker exits inside the stop grace period, and the next worker
completes the run with no duplicate rows."""

from __future__ import annotations

import pytest

from tests.worker.helpers import (
    count,
    stored_participant_keys,
    stored_users,
    truth_participant_keys,
    truth_users,
    window,
)
from tests.worker.runs.harness import all_runs, wait_until
from tests.worker.runs.test_lease import get, new_run
from worker.models import Meeting, MeetingParticipant, RunKind, RunStatus, Stream, SyncRun, ZoomUser

pytestmark = pytest.mark.slow

def truth_meetings(account) -> list:
    start, end = window()
    return [m for m in account.meetings(start, end) if m.get("uuid")]


# What the worker must exit within (compose's stop_grace_period for workers is above it).
STOP_WITHIN = 30


def test_sigterm_mid_chunk_hands_the_run_back_and_the_next_worker_completes_it(
    fake, source, start
) -> None:
    tenant_id, source_id = source
    account = fake.fake.account(0)
    worker = start("worker")
    beat = start("beat")
    fake.fake.set_faults(latency_ms=150)
    plan = new_run(tenant_id, source_id, RunKind.ACTIVITY, details={"streams": [Stream.MEETINGS]})

    def meetings_half_done() -> SyncRun | None:
        for run in all_runs(source_id):
            if run.parent_id == plan.id and run.status == RunStatus.RUNNING and \
                    run.checkpoint.get("hosts_done"):
                return run
        return None

    wait_until(lambda: meetings_half_done() is not None, 60, "a meetings chunk half done",
               worker, beat)
    chunk = meetings_half_done()
    assert chunk is not None
    worker.terminate()
    took = wait_until(lambda: not worker.alive, STOP_WITHIN, "the worker to exit", worker)
    print(f"\nworker exited {took:.1f}s after SIGTERM")  # noqa: T201 - the measurement, shown with -s
    handed = get(chunk.id)
    assert handed.status == RunStatus.QUEUED, (handed.status, handed.error_message)
    assert handed.details.get("handed_back_at")
    assert handed.error_message is None
    assert handed.checkpoint.get("hosts_done"), "the checkpoint of the pages done is kept"
    assert "SystemExit" not in worker.text()

    fake.fake.set_faults(latency_ms=0)
    successor = start("worker")
    wait_until(lambda: all(r.status not in (RunStatus.QUEUED, RunStatus.RUNNING)
                           for r in all_runs(source_id)), 90, "the run completed", successor,
               beat)
    for run in all_runs(source_id):
        assert run.status == RunStatus.SUCCEEDED, (run.kind, run.stream, run.error_message)
    assert get(chunk.id).details["attempts"] == 2
    truth = truth_participant_keys(account, source_id)
    assert stored_participant_keys(source_id) == truth
    assert count(MeetingParticipant, source_id) == len(truth)  # no duplicate rows
    assert count(Meeting, source_id) == len(truth_meetings(account))


def test_sigterm_mid_aggregation_hands_it_back_with_its_progress(fake, source, start) -> None:
    tenant_id, source_id = source
    account = fake.fake.account(0)
    worker = start("worker")
    beat = start("beat")
    fake.fake.set_faults(latency_ms=700)
    agg = new_run(tenant_id, source_id, RunKind.AGGREGATION)
    wait_until(lambda: get(agg.id).status == RunStatus.RUNNING and get(agg.id).pages > 0, 60,
               "the aggregation under way, its progress written", worker, beat)
    worker.terminate()
    wait_until(lambda: not worker.alive, STOP_WITHIN, "the worker to exit", worker)
    handed = get(agg.id)
    assert handed.status == RunStatus.QUEUED, (handed.status, handed.error_message)
    assert handed.pages > 0
    assert handed.seen > 0

    fake.fake.set_faults(latency_ms=0)
    successor = start("worker")
    wait_until(lambda: get(agg.id).status not in (RunStatus.QUEUED, RunStatus.RUNNING), 60,
               "the aggregation completed", successor, beat)
    assert get(agg.id).status == RunStatus.SUCCEEDED, get(agg.id).error_message
    assert stored_users(source_id) == truth_users(account)
    assert count(ZoomUser, source_id) == len(truth_users(account))
