"""Everything that speaks HTTP to Zoom: the client, its errors, pagination and endpoint table.

It knows nothing of Redis or Postgres: a client is handed its token source and rate limiter.
Build one for a source with ``worker.clients.client_for_source``.
"""

from worker.zoom.client import Page, ZoomClient, encode_meeting_uuid
from worker.zoom.errors import (
    TokenCacheUnavailable,
    ZoomAuthError,
    ZoomBadResponse,
    ZoomError,
    ZoomForbidden,
    ZoomNotFound,
    ZoomRateLimited,
    ZoomScopeError,
    ZoomServerError,
    ZoomUnavailable,
)
from worker.zoom.pagination import month_windows

__all__ = [
    "Page",
    "TokenCacheUnavailable",
    "ZoomAuthError",
    "ZoomBadResponse",
    "ZoomClient",
    "ZoomError",
    "ZoomForbidden",
    "ZoomNotFound",
    "ZoomRateLimited",
    "ZoomScopeError",
    "ZoomServerError",
    "ZoomUnavailable",
    "encode_meeting_uuid",
    "month_windows",
]
