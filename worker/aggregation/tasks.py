"""Celery shell of aggregation."""

from __future__ import annotations

from typing import Any

from worker.aggregation.service import run_aggregation
from worker.celery_app import celery_app
from worker.runs.task import RunTask, execute


@celery_app.task(name="zoom.aggregate", bind=True, base=RunTask)
def aggregate(self: Any, run_id: str) -> str:
    return execute(self, run_id, run_aggregation)
