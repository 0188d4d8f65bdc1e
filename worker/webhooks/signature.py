"""Zoom's webhook signature (developers.zoom.us/docs/api/webhooks/#verify-webhook-events).

`x-zm-signature: v0=<hex HMAC-SHA256(Secret Token, "v0:{x-zm-request-timestamp}:{raw body}")>`,
computed on the bytes as received (re-serialised JSON would not match), compared in constant
time. A timestamp more than `MAX_AGE_SECONDS` away from now is refused: a captured request
cannot be replayed later. URL validation answers `hex HMAC-SHA256(Secret Token, plainToken)`.
"""

from __future__ import annotations

import hashlib
import hmac

MAX_AGE_SECONDS = 300
# Stands in for the secret of an unknown source, so that path costs the same HMAC.
_NO_SECRET = b"\x00" * 32


def sign(secret: str, timestamp: str, body: bytes) -> str:
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _seconds(timestamp: str) -> float | None:
    if not timestamp.isdigit() or len(timestamp) > 16:
        return None
    value = int(timestamp)
    # Zoom sends seconds; tolerate milliseconds rather than refuse a whole deployment's events.
    return value / 1000 if value > 10**11 else float(value)


def verify(secret: str | None, timestamp: str | None, signature: str | None, body: bytes,
           now: float) -> bool:
    """True only for a fresh timestamp and a matching signature. Every failure is the same
    False (the caller answers one 401), and an unknown source (secret None) costs one HMAC too."""
    expected = sign(secret if secret is not None else _NO_SECRET.decode(), timestamp or "", body)
    matches = hmac.compare_digest(expected.encode(), (signature or "").encode())
    when = _seconds(timestamp or "")
    fresh = when is not None and abs(now - when) <= MAX_AGE_SECONDS
    return matches and fresh and secret is not None


def url_validation(secret: str, plain_token: str) -> dict[str, str]:
    """The answer to `endpoint.url_validation`."""
    encrypted = hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}
