"""The cached access token is encrypted at rest: Redis never holds a usable Zoom token."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
import redis
from cryptography.fernet import Fernet

from tests.worker.tokens.test_cache import CountingFetcher, make_cache
from worker.kit.crypto import decrypt_text, fingerprint
from worker.tokens.cache import AccessToken, token_key


def _every_value(client: redis.Redis, pattern: str) -> list[bytes]:
    return [v for k in client.scan_iter(match=pattern) if (v := client.get(k)) is not None]


def test_redis_holds_only_ciphertext_of_the_token(redis_client: redis.Redis) -> None:
    cache = make_cache(redis_client, CountingFetcher())
    sid = str(uuid.uuid4())
    token = cache.get_token(sid)
    raw = redis_client.get(token_key(sid))
    assert raw is not None
    # Neither the token nor any long piece of it is in Redis, under any key of this source.
    for value in _every_value(redis_client, f"*{sid}*"):
        assert token.access_token.encode() not in value
        assert token.access_token[:12].encode() not in value
    stored = json.loads(raw)
    assert set(stored) == {"fp", "ct"}
    # The ciphertext is the token (with the configured key), the digest is keyed, not a hash.
    assert AccessToken.from_json(decrypt_text(stored["ct"])) == token
    assert stored["fp"] == fingerprint(token.access_token)
    assert stored["fp"] != fingerprint(token.access_token, Fernet.generate_key().decode())


def test_invalidate_compares_the_digest_and_spares_a_newer_token(
    redis_client: redis.Redis,
) -> None:
    fetcher = CountingFetcher()
    cache = make_cache(redis_client, fetcher)
    sid = str(uuid.uuid4())
    first = cache.get_token(sid)
    assert cache.invalidate(sid, first) is True
    second = cache.get_token(sid)
    assert second != first
    assert fetcher.calls == 2
    # A stale 401 with the old token must not evict the new one.
    assert cache.invalidate(sid, first) is False
    assert cache.peek(sid) == second


@pytest.mark.parametrize("legacy", ["plaintext", "other-key", "garbage"])
def test_unreadable_cached_value_is_refreshed_not_used(
    redis_client: redis.Redis, legacy: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A plaintext token left by an older release, or one sealed with a rotated-away key, is
    treated as absent: the next caller refreshes and overwrites it."""
    fetcher = CountingFetcher()
    cache = make_cache(redis_client, fetcher)
    sid = str(uuid.uuid4())
    old = AccessToken("old-" + "y" * 30, 4_000_000_000.0)
    if legacy == "plaintext":
        value = old.to_json()
    elif legacy == "other-key":
        other = Fernet(Fernet.generate_key())
        value = json.dumps({"fp": "x", "ct": other.encrypt(old.to_json().encode()).decode()})
    else:
        value = "not json"
    redis_client.set(token_key(sid), value, px=60_000)
    with caplog.at_level(logging.WARNING, logger="worker.tokens.cache"):
        token = cache.get_token(sid)
    assert token != old
    assert fetcher.calls == 1
    assert "unreadable cached token" in caplog.text
    assert "y" * 30 not in caplog.text
    assert cache.peek(sid) == token


def test_a_value_read_again_is_not_decrypted_again_but_a_new_one_is(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.tokens import cache as cache_module

    reader = make_cache(redis_client, CountingFetcher())
    writer = make_cache(redis_client, CountingFetcher())  # another process, in effect
    sid = str(uuid.uuid4())
    first = writer.get_token(sid)
    opened: list[str] = []
    real = cache_module.decrypt_text
    monkeypatch.setattr(cache_module, "decrypt_text",
                        lambda ct: opened.append(ct) or real(ct))
    assert reader.get_token(sid) == first
    assert reader.get_token(sid) == first
    assert len(opened) == 1
    # Another process replaced the token: the new value is read and decrypted.
    writer.invalidate(sid, first)
    second = writer.get_token(sid)
    assert reader.get_token(sid) == second != first
    assert len(opened) == 2
    # And a value that stops being readable is not served from memory.
    redis_client.set(token_key(sid), "garbage", px=60_000)
    assert reader.peek(sid) is None
