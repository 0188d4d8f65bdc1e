"""Shared Zoom access tokens (``cache.py``) and durable refresh-token rotation
(``credentials.py``)."""

from worker.tokens.cache import AccessToken, SourceTokens, TokenCache

__all__ = ["AccessToken", "SourceTokens", "TokenCache"]
