"""Encryption of stored credentials (Fernet: AES-128-CBC with HMAC, key from settings)."""

from __future__ import annotations

import hashlib
import hmac
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from worker.settings import SettingsError, get_settings


class CredentialsUnreadable(RuntimeError):
    """Stored credentials cannot be decrypted with the configured key (key rotated or lost)."""


def _key(key: str | None = None) -> str:
    key = key if key is not None else get_settings().encryption_key
    if not key:
        raise SettingsError("AI_ENCRYPTION_KEY is not set (see .env.example)")
    return key


@lru_cache(maxsize=4)
def _fernet_for(key: str) -> Fernet:
    # Built once per key: hot paths (every cached token read) decrypt with it.
    return Fernet(key.encode())


def _fernet(key: str | None = None) -> Fernet:
    return _fernet_for(_key(key))


def encrypt_json(data: dict[str, Any], key: str | None = None) -> str:
    return _fernet(key).encrypt(json.dumps(data, sort_keys=True).encode()).decode()


def decrypt_json(token: str, key: str | None = None) -> dict[str, Any]:
    try:
        plain = _fernet(key).decrypt(token.encode())
    except InvalidToken:
        # Never include the ciphertext: it is not secret, but it is noise in an admin message.
        raise CredentialsUnreadable(
            "stored credentials cannot be decrypted with AI_ENCRYPTION_KEY"
        ) from None
    result: dict[str, Any] = json.loads(plain)
    return result


def encrypt_text(plain: str, key: str | None = None) -> str:
    return _fernet(key).encrypt(plain.encode()).decode()


def decrypt_text(token: str | bytes, key: str | None = None) -> str:
    raw = token.encode() if isinstance(token, str) else token
    try:
        return _fernet(key).decrypt(raw).decode()
    except InvalidToken:
        raise CredentialsUnreadable(
            "stored secret cannot be decrypted with AI_ENCRYPTION_KEY"
        ) from None


def fingerprint(secret: str, key: str | None = None) -> str:
    """A keyed digest of ``secret``: lets Redis compare a stored secret without holding it."""
    return hmac.new(_key(key).encode(), secret.encode(), hashlib.sha256).hexdigest()[:32]


def redact(secret: str | None, keep: int = 4) -> str:
    """What logs and errors may show of a token: its first few characters."""
    if not secret:
        return "<none>"
    return f"{secret[:keep]}…" if len(secret) > keep else "…"
