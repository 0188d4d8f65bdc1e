"""Everything that speaks HTTP to Zoom: the client, its errors, pagination and endpoint table.

Build clients with ``worker.zoom.factory.client_for_source`` (not imported here, so that this
package can be imported without settings, Redis or a database).
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
