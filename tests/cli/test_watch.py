"""What the CLI tells an admin to do next, from the test and the source's state (no services)."""

from __future__ import annotations

import uuid

from worker.cli.watch import packed, what_to_fix
from worker.models import ConnectionTest, Source, SourceStatus
from worker.models import TestStatus as TS
from worker.tokens.credentials import rotation_unknown_message
from worker.zoom.codes import REAUTHORIZE_MESSAGE


def _failed_test() -> ConnectionTest:
    return ConnectionTest(tenant_id=uuid.uuid4(), source_id=uuid.uuid4(),
                          status=TS.FAILED, message="refresh failed")


def _source(message: str) -> Source:
    return Source(tenant_id=uuid.uuid4(), name="zoom", grant_type="refresh_token",
                  status=SourceStatus.REAUTHORIZE, status_message=message)


def test_an_unknown_rotation_asks_for_the_test_not_for_a_new_token() -> None:
    fix = what_to_fix(_failed_test(), _source(rotation_unknown_message(True)))
    assert "nothing to paste yet" in fix
    assert "test-connection" in fix
    assert "revoked" not in fix


def test_a_rejected_refresh_token_asks_for_a_new_one() -> None:
    fix = what_to_fix(_failed_test(), _source(REAUTHORIZE_MESSAGE))
    assert "revoked or rotated elsewhere" in fix
    assert "--refresh-token" in fix


def test_counts_are_packed_within_the_width_and_never_split() -> None:
    items = [f"count{i} {i * 1000}" for i in range(12)]
    lines = packed("aggregation succeeded", items, 40)
    assert all(len(line) <= 40 for line in lines)
    flat = "  ".join(line.strip() for line in lines)
    assert all(item in flat for item in items)
    assert lines[0].startswith("aggregation succeeded")
