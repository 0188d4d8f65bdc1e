"""Pointing this process's settings, and the subprocesses it starts, at a fakezoom server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from fakezoom.server import FakeZoomServer


def zoom_urls(server: FakeZoomServer) -> dict[str, str]:
    return {"AI_ZOOM_API_URL": server.api_url, "AI_ZOOM_OAUTH_URL": server.oauth_token_url}


def reset_process_state() -> None:
    """Forget what was built from the settings: the settings themselves, the Zoom clients' shared
    plumbing and the Redis clients."""
    from worker import clients
    from worker.kit.redis import reset_redis
    from worker.settings import get_settings

    get_settings.cache_clear()
    clients.reset()
    reset_redis()


@contextmanager
def settings_pointed_at(server: FakeZoomServer, **settings: str) -> Iterator[None]:
    """Until exit, this process's settings (and those of subprocesses started meanwhile) point
    at ``server``, with ``settings`` (``AI_*`` variables) on top."""
    env = {**zoom_urls(server), **settings}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    reset_process_state()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_process_state()
