"""Entry points of the processes the token tests start ('spawn': nothing of pytest imported)."""

from __future__ import annotations

import os


def refresh_through(source_id: str, oauth_url: str) -> None:
    """Refresh the source's token with Zoom's OAuth endpoint at ``oauth_url`` (a proxy)."""
    os.environ["AI_ZOOM_OAUTH_URL"] = oauth_url
    from worker import clients
    from worker.settings import get_settings

    get_settings.cache_clear()
    clients.reset()
    clients.get_token_cache().get_token(source_id)


def refresh_outcome(source_id: str) -> tuple[str, str]:
    """Refresh the source's token; (exception class name or "ok", admin message)."""
    from worker import clients
    from worker.zoom.errors import ZoomError

    try:
        clients.get_token_cache().get_token(source_id)
    except ZoomError as exc:
        return type(exc).__name__, exc.admin_message
    return "ok", ""
