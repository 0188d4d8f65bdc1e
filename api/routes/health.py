"""Liveness and readiness; the only endpoints without a key."""

from __future__ import annotations

import logging

import redis
from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import redis_client
from api.errors import PROBLEM_RESPONSES, ServiceUnavailable
from worker.db import get_engine
from worker.settings import get_settings

router = APIRouter(tags=["health"])
log = logging.getLogger("api.health")


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (no dependency is checked)."""
    return Health(status="ok")


def _check_postgres() -> str:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        log.warning("readiness: postgres unreachable", exc_info=True)
        return "unreachable"
    return "ok"


def _check_redis(url: str, name: str) -> str:
    try:
        redis_client(url).ping()
    except (redis.RedisError, OSError, ValueError):
        log.warning("readiness: %s unreachable", name, exc_info=True)
        return "unreachable"
    return "ok"


@router.get("/readyz", response_model=Health, responses={503: PROBLEM_RESPONSES[503]})
def readyz() -> Health:
    """Postgres, Redis and the broker answer; 503 names the one that does not."""
    settings = get_settings()
    checks = {
        "postgres": _check_postgres(),
        "redis": _check_redis(settings.redis_url, "redis"),
        "broker": _check_redis(settings.broker_url, "broker"),
    }
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        raise ServiceUnavailable(f"unreachable: {', '.join(failed)}", checks=checks)
    return Health(status="ok", checks=checks)
