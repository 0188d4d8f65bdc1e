"""The operator CLI, ``activity-insights`` (entry point ``worker.cli:app``)."""

from worker.cli.main import app

__all__ = ["app"]
