"""One shared access token per source, refreshed by one caller at a time (single flight).

The sequence (shared/architecture.md, "Token refresh"):

1. Read the cached token: one Redis GET. Present means valid for longer than the margin, because
   it is stored with a TTL that ends a margin before Zoom's expiry.
2. Else try the source's redis-py ``Lock`` (lease well above the OAuth timeout). A caller that
   does not get it polls the *cache* (not Zoom) until the holder publishes, within a bounded wait.
3. Inside the lock read the cache again: another process may just have refreshed.
4. Ask the fetcher (OAuth; for refresh-token apps the rotation in ``credentials.py``) and write
   the token with a TTL a margin shorter than its lifetime.
5. Release. A waiter whose wait ran out reads the cache once more and, still empty, raises a
   retryable error rather than calling Zoom itself.
6. ``invalidate`` after a 401 / code 124 deletes the cached token only if it still *is* the token
   that failed (compare-and-delete in Lua), so a stale 401 never evicts a newer token.

The cached token is encrypted at rest (Fernet, ``AI_ENCRYPTION_KEY``), like the pending refresh
token: Redis (often the broker too) never holds a usable Zoom token. The value is
``{"fp": <keyed digest of the access token>, "ct": <ciphertext of the token's JSON>}``; the
digest is what the compare-and-delete script compares, since Lua cannot decrypt. A read stays one
round trip plus one decrypt, and a value this process has decrypted before is only compared
with the one it read (bench/tokens.py measures both). A value that does not decrypt (a
plaintext token from before, a rotated key) counts as absent: the next caller refreshes it.

If the lock holder dies, its lease expires and the next poller takes the lock and refreshes.
Redis errors become ``TokenCacheUnavailable``: there is no per-process fallback, which would
stampede Zoom's token endpoint (and, for single-token apps, invalidate each other's tokens).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.exceptions import LockNotOwnedError

from worker.kit.crypto import CredentialsUnreadable, decrypt_text, encrypt_text, fingerprint, redact
from worker.kit.metrics import record_token_refresh
from worker.settings import get_settings
from worker.tokens.faults import fault
from worker.zoom.errors import TokenCacheUnavailable, ZoomAuthError, ZoomUnavailable

log = logging.getLogger(__name__)

KEY_PREFIX = "ai:token:"
# Decrypted tokens a process keeps (one per source) so that a value read again is not
# decrypted again.
_MAX_OPENED = 10_000

_COMPARE_AND_DELETE = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, data = pcall(cjson.decode, v)
if ok and type(data) == 'table' and data['fp'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class AccessToken:
    """A Zoom access token. ``repr`` shows only its first characters."""

    access_token: str = field(repr=False)
    expires_at: float  # epoch seconds
    scopes: list[str] = field(default_factory=list)
    api_url: str | None = None

    def __repr__(self) -> str:
        return (f"AccessToken({redact(self.access_token)}, expires_at={self.expires_at:.0f}, "
                f"scopes={self.scopes!r})")

    def to_json(self) -> str:
        return json.dumps({"access_token": self.access_token, "expires_at": self.expires_at,
                           "scopes": self.scopes, "api_url": self.api_url})

    @classmethod
    def from_json(cls, raw: bytes | str) -> AccessToken:
        data = json.loads(raw)
        return cls(access_token=str(data["access_token"]), expires_at=float(data["expires_at"]),
                   scopes=list(data.get("scopes") or []), api_url=data.get("api_url"))


Fetcher = Callable[[str], AccessToken]


def seal(token: AccessToken) -> str:
    """The value stored under ``token_key``: the encrypted token and its keyed digest."""
    return json.dumps({"fp": fingerprint(token.access_token),
                       "ct": encrypt_text(token.to_json())})


def token_key(source_id: str) -> str:
    return f"{KEY_PREFIX}{source_id}"


def lock_key(source_id: str) -> str:
    return f"{KEY_PREFIX}{source_id}:lock"


def error_key(source_id: str) -> str:
    return f"{KEY_PREFIX}{source_id}:error"


def _unavailable(exc: Exception) -> TokenCacheUnavailable:
    return TokenCacheUnavailable(
        f"token cache unreachable: {type(exc).__name__}",
        admin_message="The worker's Redis is unreachable; the sync will retry.",
    )


class TokenCache:
    """Shared access tokens in Redis. ``fetcher(source_id)`` asks Zoom; it runs inside the lock.

    ``lease``: how long a lock holder may take before another process may refresh; well above the
    OAuth timeout (default: 4 x ``zoom_timeout_seconds``). ``wait``: how long a caller waits for
    another's refresh (default: lease + timeout, so a dead holder's lease runs out within it).
    ``auth_error_ttl``: how long Zoom's refusal of the credentials is remembered, so that the
    callers queued behind a failed refresh fail with the same error instead of each asking Zoom
    again with credentials it just refused (``forget()`` clears it after an admin's fix).
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        fetcher: Fetcher,
        margin: float,
        *,
        lease: float | None = None,
        wait: float | None = None,
        poll_seconds: float = 0.02,
        auth_error_ttl: float = 30.0,
    ) -> None:
        if lease is None or wait is None:
            timeout = get_settings().zoom_timeout_seconds
            lease = 4 * timeout if lease is None else lease
            wait = lease + timeout if wait is None else wait
        self.redis = redis_client
        self.fetcher = fetcher
        self.margin = margin
        self.lease = lease
        self.wait = wait
        self.poll_seconds = poll_seconds
        self.auth_error_ttl = auth_error_ttl
        self._cad = redis_client.register_script(_COMPARE_AND_DELETE)
        # source -> (the stored value, its decrypted token): a value read again (the common
        # case: one token serves an hour of requests) is compared, not decrypted again.
        self._opened: dict[str, tuple[bytes, AccessToken]] = {}

    # -- reads -----------------------------------------------------------------------------

    def peek(self, source_id: str) -> AccessToken | None:
        """The cached token, or None: exactly one Redis round trip."""
        try:
            raw = self.redis.get(token_key(source_id))
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc
        return self._decode(source_id, raw)

    def _peek_or_error(self, source_id: str) -> AccessToken | None:
        """The cached token; raises the remembered auth error if the last refresh was refused."""
        try:
            raw, err = self.redis.mget([token_key(source_id), error_key(source_id)])
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc
        token = self._decode(source_id, raw)
        if token is None and err is not None:
            data = json.loads(err)
            raise ZoomAuthError(
                data["message"], data.get("code"), data.get("status"),
                reauthorize=bool(data.get("reauthorize")), admin_message=data.get("admin"),
            )
        return token

    def _decode(self, source_id: str, raw: Any) -> AccessToken | None:
        if raw is None:
            return None
        value = raw if isinstance(raw, bytes) else str(raw).encode()
        opened = self._opened.get(source_id)
        if opened is not None and opened[0] == value:
            token = opened[1]
        else:
            try:
                token = AccessToken.from_json(decrypt_text(json.loads(value)["ct"]))
            except (ValueError, KeyError, TypeError, CredentialsUnreadable):
                log.warning("unreadable cached token for source=%s: ignoring it", source_id)
                return None
            if len(self._opened) >= _MAX_OPENED:
                self._opened.clear()  # bounded: a process serving many sources re-decrypts
            self._opened[source_id] = (value, token)
        # The TTL already ends a margin early; this guards against clock skew between hosts.
        return token if token.expires_at > time.time() + 1 else None

    def get_token(self, source_id: str) -> AccessToken:
        token = self.peek(source_id)
        if token is not None:
            return token
        return self._refresh(source_id)

    # -- refresh ---------------------------------------------------------------------------

    def _refresh(self, source_id: str) -> AccessToken:
        try:
            lock = self.redis.lock(lock_key(source_id), timeout=self.lease, thread_local=False)
        except redis.RedisError as exc:  # pragma: no cover - creating a Lock does no I/O today
            raise _unavailable(exc) from exc
        deadline = time.monotonic() + self.wait
        pause = self.poll_seconds
        while True:
            try:
                acquired = lock.acquire(blocking=False)
            except redis.RedisError as exc:
                raise _unavailable(exc) from exc
            if acquired:
                try:
                    return self._refresh_locked(source_id)
                finally:
                    self._release(lock, source_id)
            if time.monotonic() >= deadline:
                break
            # Jittered, growing pauses: a hundred waiters must not poll in lockstep.
            time.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 1.5, 0.25)
            token = self._peek_or_error(source_id)
            if token is not None:
                return token
        token = self._peek_or_error(source_id)
        if token is not None:
            return token
        raise ZoomUnavailable(
            f"another worker's token refresh for source {source_id} did not finish within "
            f"{self.wait:.0f}s",
            admin_message="Fetching a Zoom access token took too long; the sync will retry.",
        )

    def _refresh_locked(self, source_id: str) -> AccessToken:
        fault("token_locked")
        token = self._peek_or_error(source_id)
        if token is not None:
            return token
        try:
            token = self.fetcher(source_id)
        except ZoomAuthError as exc:
            record_token_refresh(source_id, "refused")
            self._remember(source_id, exc)
            raise
        except Exception:
            record_token_refresh(source_id, "error")
            raise
        record_token_refresh(source_id, "ok")
        fault("token_fetched")
        self._store(source_id, token)
        log.info("zoom token refreshed source=%s token=%s expires_in=%.0fs", source_id,
                 redact(token.access_token), token.expires_at - time.time())
        return token

    def _store(self, source_id: str, token: AccessToken) -> None:
        lifetime = token.expires_at - time.time()
        # A token shorter-lived than twice the margin (tests, odd apps) keeps half its life.
        margin = min(self.margin, lifetime / 2)
        ttl_ms = max(int((lifetime - margin) * 1000), 1)
        try:
            self.redis.set(token_key(source_id), seal(token), px=ttl_ms)
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc

    def _remember(self, source_id: str, exc: ZoomAuthError) -> None:
        value = json.dumps({"message": exc.message, "code": exc.code, "status": exc.status,
                            "reauthorize": exc.reauthorize, "admin": exc.admin_message})
        try:
            self.redis.set(error_key(source_id), value, px=max(int(self.auth_error_ttl * 1000), 1))
        except redis.RedisError:
            log.warning("could not remember the auth failure of source=%s", source_id)

    def forget(self, source_id: str) -> None:
        """Drop the cached token and any remembered refusal (after an admin changed credentials)."""
        try:
            self.redis.delete(token_key(source_id), error_key(source_id))
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc

    def _release(self, lock: Any, source_id: str) -> None:
        try:
            lock.release()
        except LockNotOwnedError:
            log.warning("token lock for source=%s expired before release (refresh took longer "
                        "than the %.0fs lease)", source_id, self.lease)
        except redis.RedisError as exc:
            # The lease frees the lock anyway; the token (if any) is already published.
            log.warning("could not release token lock for source=%s: %s", source_id,
                        type(exc).__name__)

    # -- invalidation ----------------------------------------------------------------------

    def invalidate(self, source_id: str, token: AccessToken | str) -> bool:
        """Delete the cached token if it is still ``token``. True when something was deleted."""
        value = token.access_token if isinstance(token, AccessToken) else token
        try:
            deleted = self._cad(keys=[token_key(source_id)], args=[fingerprint(value)])
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc
        log.info("zoom token invalidated source=%s token=%s evicted=%s", source_id,
                 redact(value), bool(deleted))
        return bool(deleted)

    def for_source(self, source_id: str) -> SourceTokens:
        return SourceTokens(self, source_id)


@dataclass(frozen=True)
class SourceTokens:
    """The handle a ``ZoomClient`` holds: one source's token in the shared cache."""

    cache: TokenCache
    source_id: str

    def get_token(self) -> AccessToken:
        return self.cache.get_token(self.source_id)

    def invalidate(self, token: Any) -> bool:
        return self.cache.invalidate(self.source_id, token.access_token)
