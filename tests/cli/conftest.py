"""The CLI against the suite's real Postgres and Redis; the broker is the test Redis database."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from worker.cli import app
from worker.settings import get_settings


@pytest.fixture
def cli(clean_db: Engine, redis_client: Any) -> Iterator[Callable[..., Result]]:
    """Invoke ``activity-insights ARGS`` in-process; the database and Redis start empty."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        get_settings.cache_clear()
        try:
            return runner.invoke(app, list(args), input=input, env=env)
        finally:
            get_settings.cache_clear()

    yield invoke


def queued_messages(redis_client: Any, queue: str) -> list[dict[str, Any]]:
    """Celery messages waiting in a Redis queue, with their body decoded."""
    out = []
    for raw in redis_client.lrange(queue, 0, -1):
        message = json.loads(raw)
        message["decoded_body"] = json.loads(base64.b64decode(message["body"]))
        out.append(message)
    return out
