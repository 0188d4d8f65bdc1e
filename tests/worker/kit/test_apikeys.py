"""Key material: format, hashing and the prefix shown in listings."""

from __future__ import annotations

import hashlib

from worker.kit.apikeys import display_prefix, generate_key, hash_key


def test_keys_are_random_prefixed_and_hashed_with_sha256() -> None:
    keys = {generate_key() for _ in range(100)}
    assert len(keys) == 100
    key = keys.pop()
    assert key.startswith("ai_")
    assert len(key) == 3 + 43
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert display_prefix(key) == key[:10]
