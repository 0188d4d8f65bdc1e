"""API key material: ``ai_<43 url-safe chars>`` (256 bits), stored only as its SHA-256.

A plain hash (no salt, no slow KDF) is right for keys: they are random and long, so there is
nothing to brute-force, and a fast hash lets every request look its key up by index.

The API verifies keys and the CLI (`activity-insights key create`) mints them with these same
functions: one format, one hash.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "ai_"
# What listings show of a key: enough to tell keys apart, far too little to guess the rest.
DISPLAY_PREFIX_LENGTH = 10


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]
