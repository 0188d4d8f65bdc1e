"""Zoom roles and their members (the routes are shared with groups: `_directory`)."""

from __future__ import annotations

from api.routes._directory import directory_router
from worker.models import ZoomRole

router = directory_router(ZoomRole, "role")
