"""Celery shell of correlation (database only: no tenant slot, no Zoom call)."""

from __future__ import annotations

from typing import Any

from worker.celery_app import celery_app
from worker.correlation.service import run_correlation
from worker.runs.task import RunTask, execute


@celery_app.task(name="zoom.correlate", bind=True, base=RunTask)
def correlate(self: Any, run_id: str) -> str:
    return execute(self, run_id, run_correlation, gated=False)
