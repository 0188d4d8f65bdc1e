"""Flower with its Prometheus endpoint behind the same basic auth as the rest of Flower.

Flower 2 serves `/metrics` without authentication while `/api/tasks` needs it, on a port that a
deployment publishes: task names, worker names and counts would be readable by anyone who can
reach it. Run as `python -m worker.cli.flower <celery arguments>`: it wraps Flower's handler in
tornado's `authenticated` (which calls Flower's own basic-auth check) and then runs Celery's
command line exactly as `python -m celery` would.
"""

from __future__ import annotations

from typing import Any


def protect_metrics() -> None:
    from flower.views import monitor
    from tornado import web

    handler: Any = monitor.Metrics
    if not getattr(handler.get, "_ai_authenticated", False):
        guarded: Any = web.authenticated(handler.get)
        guarded._ai_authenticated = True
        handler.get = guarded


def main() -> None:
    from celery.__main__ import main as celery_main

    protect_metrics()
    celery_main()


if __name__ == "__main__":
    main()
