"""Celery shells of activity sync: the plan, and one chunk."""

from __future__ import annotations

from typing import Any

from worker.activity.planner import plan_activity
from worker.activity.service import abandon_chain, run_chunk
from worker.celery_app import celery_app
from worker.runs.task import RunTask, execute


@celery_app.task(name="zoom.sync_activity", bind=True, base=RunTask)
def sync_activity(self: Any, run_id: str) -> str:
    # Planning reads Postgres and writes chunk rows: cheap, so it takes no tenant slot.
    return execute(self, run_id, plan_activity, gated=False)


@celery_app.task(name="zoom.sync_activity_chunk", bind=True, base=RunTask)
def sync_activity_chunk(self: Any, run_id: str) -> str:
    return execute(self, run_id, run_chunk, on_give_up=abandon_chain)
