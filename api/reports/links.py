"""Signed, short-lived links to the report page, so a browser can open it without an API key.

A link carries its claims (tenant, source filter, idle days, expiry) in the clear and an
HMAC-SHA256 over them. The HMAC key is derived from the deployment's encryption key (one secret
to rotate; the derivation label keeps it from being usable as the Fernet key's stand-in or vice
versa). Rotating the encryption key invalidates every link, which their short life makes cheap.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from worker.settings import Settings

_LABEL = b"activity-insights report-link v1"


class LinkError(Exception):
    """The token is malformed, forged or expired (the message says which, never the token)."""


@dataclass(frozen=True)
class LinkClaims:
    tenant_id: uuid.UUID
    days: int
    expires_at: datetime
    source_id: uuid.UUID | None = None


def _key(settings: Settings) -> bytes:
    settings.require("encryption_key")
    return hmac.new(settings.encryption_key.encode(), _LABEL, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claims: LinkClaims, settings: Settings) -> str:
    body = json.dumps({
        "t": str(claims.tenant_id),
        "s": str(claims.source_id) if claims.source_id else None,
        "d": claims.days,
        "e": int(claims.expires_at.timestamp()),
    }, separators=(",", ":")).encode()
    mac = hmac.new(_key(settings), body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def verify(token: str, settings: Settings, now: datetime) -> LinkClaims:
    try:
        body_part, mac_part = token.split(".")
        body, mac = _unb64(body_part), _unb64(mac_part)
    except ValueError:
        raise LinkError("the link is not one this API issued") from None
    expected = hmac.new(_key(settings), body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise LinkError("the link is not one this API issued")
    data = json.loads(body)
    claims = LinkClaims(
        tenant_id=uuid.UUID(data["t"]),
        source_id=uuid.UUID(data["s"]) if data["s"] else None,
        days=int(data["d"]),
        expires_at=datetime.fromtimestamp(int(data["e"]), UTC),
    )
    if now >= claims.expires_at:
        raise LinkError("the link has expired: ask for a new one")
    return claims
