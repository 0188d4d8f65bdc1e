"""Zoom groups and their members (the routes are shared with roles: `_directory`)."""

from __future__ import annotations

from api.routes._directory import directory_router
from worker.models import ZoomGroup

router = directory_router(ZoomGroup, "group")
