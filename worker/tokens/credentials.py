"""A source's stored credentials, Zoom's OAuth endpoint, and refresh-token rotation.

Credentials are decrypted in memory only, inside the call that needs them; ``Credentials`` shows
nothing secret in ``repr``. The fetcher here (``SourceTokenFetcher``) runs *inside* the token
cache's per-source lock (``worker.tokens.cache``), so one process at a time refreshes a source.

Server-to-Server apps (``account_credentials``): ask for a token; nothing to persist.

General apps (``refresh_token``): Zoom rotates refresh tokens; once it has issued RT n+1, RT n is
refused with ``invalid_grant``. The window that matters is between Zoom's answer and our durable
write, so the sequence is (fault points in brackets; tests SIGKILL the process at each):

1. Read RT n and ``credentials_version`` v from Postgres. Read the Redis *pending* key
   ``ai:rt-pending:<source>`` = {base_version, Fernet(RT)}. If ``base_version == v`` it holds an
   RT newer than Postgres (a previous holder died before its commit): try it first, then RT n.
   If ``base_version < v`` it is stale (already committed, or credentials replaced): delete it.
2. [before_zoom_call] Call Zoom with the candidate RT.
3. [after_zoom_answer] At once write the new RT to the pending key (base_version v).
4. [after_pending_write] ``UPDATE source SET credentials_ciphertext=..., credentials_version=v+1
   WHERE id=... AND credentials_version=v``; commit.
5. [after_commit] Delete the pending key. [after_pending_delete]
6. Return the access token; the cache publishes it (so it is never used before step 4).

What a crash leaves behind:
- at 2 (before the call): nothing changed; RT n still works.
- at 3 (Zoom answered, nothing written): RT n+1 is lost and RT n is dead. The next refresh gets
  ``invalid_grant`` and the source goes to the clear re-authorise state. This is the window Zoom's
  design leaves open; it lasts one Redis write.
- at 4 (pending written, no commit): the next refresh finds pending base v == v, uses it, carries
  on. at 5 (committed, pending still there): pending is stale (v < v+1), deleted; RT n+1 from
  Postgres works. After 5: clean state; the next caller refreshes the access token normally.

``invalid_grant`` on every candidate: ``source.status = 'reauthorize'`` with a message asking the
admin to paste a new refresh token (only if the credentials did not change meanwhile), then
``ZoomAuthError(reauthorize=True)``. The pending key is encrypted with the same Fernet key as the
database column; run Redis with append-only persistence in production so step 3 survives a
Redis restart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from worker.kit.crypto import decrypt_json, encrypt_json, redact
from worker.models.base import utcnow
from worker.models.enums import GrantType, SourceStatus
from worker.models.tenancy import Source
from worker.tokens.cache import AccessToken, error_key, token_key
from worker.tokens.faults import fault
from worker.zoom.errors import (
    TokenCacheUnavailable,
    ZoomAuthError,
    ZoomBadResponse,
    ZoomError,
    ZoomNotFound,
    ZoomServerError,
    ZoomUnavailable,
)

log = logging.getLogger(__name__)

PENDING_PREFIX = "ai:rt-pending:"
# A token request that failed in transit is retried this often (OAuth calls are cheap and the
# cache lock's lease is sized for a few of them).
OAUTH_RETRIES = 2

REAUTHORIZE_MESSAGE = (
    "Zoom no longer accepts this source's refresh token (invalid_grant). Re-authorise the app in "
    "the Zoom Marketplace and paste the new refresh token into this source's credentials."
)


def pending_key(source_id: str) -> str:
    return f"{PENDING_PREFIX}{source_id}"


def forget_source_credentials(client: redis.Redis, source_id: str) -> None:
    """After an admin changed a source's credentials: drop its cached access token, the
    remembered auth refusal and any pending rotated refresh token, so the next task starts from
    the new credentials. The refresh lock is left to its lease: deleting a held lock would let
    two refreshes run at once. Best effort: a stale access token still fails with 401 (which
    evicts it) and the bumped credentials_version makes a stale pending token detectable."""
    try:
        client.delete(token_key(source_id), error_key(source_id), pending_key(source_id))
    except redis.RedisError:
        log.warning("could not clear the token cache of source=%s", source_id, exc_info=True)


@dataclass
class Credentials:
    """Decrypted credentials. Never log or store this object; ``repr`` hides the secrets."""

    client_id: str
    client_secret: str = field(repr=False)
    account_id: str | None = None
    refresh_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Credentials:
        return cls(client_id=str(data.get("client_id") or ""),
                   client_secret=str(data.get("client_secret") or ""),
                   account_id=data.get("account_id") or None,
                   refresh_token=data.get("refresh_token") or None)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"client_id": self.client_id, "client_secret": self.client_secret}
        if self.account_id:
            data["account_id"] = self.account_id
        if self.refresh_token:
            data["refresh_token"] = self.refresh_token
        return data


@dataclass
class StoredSource:
    """What the token code needs of a ``source`` row, read in one query."""

    id: uuid.UUID
    grant_type: str
    credentials: Credentials
    version: int
    zoom_account_id: str | None


def load_source(engine: Engine, source_id: uuid.UUID | str) -> StoredSource:
    sid = uuid.UUID(str(source_id))
    stmt = select(
        col(Source.grant_type), col(Source.credentials_ciphertext),
        col(Source.credentials_version), col(Source.zoom_account_id),
    ).where(col(Source.id) == sid)
    with engine.connect() as conn:
        row = conn.execute(stmt).one_or_none()
    if row is None:
        raise ZoomNotFound(f"source {sid} does not exist")
    grant_type, ciphertext, version, account_id = row
    creds = Credentials.from_dict(decrypt_json(ciphertext)) if ciphertext else Credentials("", "")
    return StoredSource(sid, str(grant_type), creds, int(version), account_id)


@dataclass
class TokenGrant:
    access_token: str = field(repr=False)
    expires_in: float
    scopes: list[str]
    api_url: str | None
    refresh_token: str | None = field(default=None, repr=False)

    def to_access_token(self, now: float | None = None) -> AccessToken:
        now = time.time() if now is None else now
        return AccessToken(self.access_token, now + self.expires_in, self.scopes, self.api_url)


class OAuthClient:
    """Zoom's token endpoint. Client credentials go in HTTP Basic auth, grants in the form body
    (never the query string, which ends up in access logs)."""

    def __init__(self, http: httpx.Client, oauth_url: str, timeout: float,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.http = http
        self.oauth_url = oauth_url
        self.timeout = timeout
        self._sleep = sleep

    def account_credentials(self, creds: Credentials) -> TokenGrant:
        if not creds.account_id:
            raise ZoomAuthError("S2S credentials lack account_id", "missing_account_id",
                                admin_message="The source's credentials have no Zoom account "
                                "id; Server-to-Server apps need one.")
        return self._request(creds, {"grant_type": "account_credentials",
                                     "account_id": creds.account_id})

    def refresh(self, creds: Credentials, refresh_token: str) -> TokenGrant:
        return self._request(creds, {"grant_type": "refresh_token",
                                     "refresh_token": refresh_token})

    def _request(self, creds: Credentials, form: dict[str, str]) -> TokenGrant:
        attempt = 0
        while True:
            try:
                response = self.http.post(
                    self.oauth_url, data=form, auth=(creds.client_id, creds.client_secret),
                    timeout=self.timeout, headers={"Accept": "application/json"},
                )
            except httpx.TransportError as exc:
                error: ZoomError = ZoomUnavailable(
                    f"Zoom OAuth unreachable: {type(exc).__name__}",
                    admin_message="Zoom's sign-in service could not be reached; will retry.")
            else:
                if response.status_code < 500:
                    return self._parse(response, form["grant_type"])
                error = ZoomServerError("Zoom OAuth server error", None, response.status_code)
            attempt += 1
            if attempt > OAUTH_RETRIES:
                raise error
            self._sleep(random.uniform(0, 0.5 * 2 ** attempt))

    def _parse(self, response: httpx.Response, grant: str) -> TokenGrant:
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise ZoomBadResponse("Zoom OAuth answered with a non-JSON body", None,
                                  response.status_code)
        if response.status_code >= 400 or "access_token" not in body:
            code = body.get("error") or body.get("code") or "oauth_error"
            reason = str(body.get("reason") or body.get("message") or "token request refused")
            raise ZoomAuthError(
                f"Zoom OAuth refused the {grant} grant: {reason[:200]}", code,
                response.status_code, admin_message=_oauth_admin_message(str(code), reason),
            )
        try:
            return TokenGrant(
                access_token=str(body["access_token"]),
                expires_in=float(body.get("expires_in") or 3600),
                scopes=str(body.get("scope") or "").split(),
                api_url=body.get("api_url"),
                refresh_token=body.get("refresh_token"),
            )
        except (TypeError, ValueError):
            raise ZoomBadResponse("Zoom OAuth answer has an unexpected shape") from None


def _oauth_admin_message(code: str, reason: str) -> str:
    if code in ("invalid_client", "4702", "4704"):
        return ("Zoom rejected the app's client id or client secret. Check them in the Zoom "
                "Marketplace and update the source.")
    if code == "invalid_grant" or code == "4711":
        return REAUTHORIZE_MESSAGE
    if code in ("4717",):
        return "The Zoom app is disabled. Activate it in the Zoom Marketplace."
    return f"Zoom refused the app's credentials ({code}: {reason[:120]})."


def _is_invalid_grant(exc: ZoomAuthError) -> bool:
    return str(exc.code) in ("invalid_grant", "4711") or "invalid token" in exc.message.lower()


class SourceTokenFetcher:
    """The ``fetcher`` of ``TokenCache``: credentials from Postgres -> a token from Zoom."""

    def __init__(self, engine: Engine, redis_client: redis.Redis, oauth: OAuthClient) -> None:
        self.engine = engine
        self.redis = redis_client
        self.oauth = oauth

    def __call__(self, source_id: str) -> AccessToken:
        stored = load_source(self.engine, source_id)
        if stored.grant_type == GrantType.REFRESH_TOKEN:
            return self._rotate(stored)
        grant = self.oauth.account_credentials(stored.credentials)
        return grant.to_access_token()

    # -- rotation --------------------------------------------------------------------------

    def _read_pending(self, stored: StoredSource) -> str | None:
        key = pending_key(str(stored.id))
        try:
            raw = self.redis.get(key)
            if raw is None:
                return None
            data = json.loads(raw)
            base = int(data["base_version"])
            if base == stored.version:
                return str(decrypt_json(data["ciphertext"])["refresh_token"])
            # Older than Postgres: committed already, or the credentials were replaced.
            self.redis.delete(key)
            return None
        except redis.RedisError as exc:
            raise TokenCacheUnavailable(f"pending refresh token unreadable: "
                                        f"{type(exc).__name__}") from exc

    def _rotate(self, stored: StoredSource) -> AccessToken:
        sid = str(stored.id)
        creds = stored.credentials
        candidates: list[tuple[str, str]] = []
        pending = self._read_pending(stored)
        if pending:
            candidates.append(("pending", pending))
        if creds.refresh_token and creds.refresh_token != pending:
            candidates.append(("stored", creds.refresh_token))
        if not candidates:
            self._mark_reauthorize(stored)
            raise ZoomAuthError("source has no refresh token", "invalid_grant",
                                reauthorize=True, admin_message=REAUTHORIZE_MESSAGE)

        last: ZoomAuthError | None = None
        for origin, refresh_token in candidates:
            fault("before_zoom_call")
            try:
                grant = self.oauth.refresh(creds, refresh_token)
            except ZoomAuthError as exc:
                if not _is_invalid_grant(exc):
                    raise
                log.warning("refresh token refused source=%s origin=%s token=%s", sid, origin,
                            redact(refresh_token, 2))
                last = exc
                continue
            fault("after_zoom_answer")
            new_rt = grant.refresh_token or refresh_token
            self._persist(stored, new_rt)
            return grant.to_access_token()

        self._mark_reauthorize(stored)
        raise ZoomAuthError(
            "every refresh token we hold was refused (invalid_grant)",
            last.code if last else "invalid_grant", last.status if last else None,
            reauthorize=True, admin_message=REAUTHORIZE_MESSAGE,
        )

    def _persist(self, stored: StoredSource, new_rt: str) -> None:
        sid = str(stored.id)
        key = pending_key(sid)
        if new_rt == stored.credentials.refresh_token:
            return  # Zoom did not rotate: nothing new to keep.
        try:
            self.redis.set(key, json.dumps({
                "base_version": stored.version,
                "ciphertext": encrypt_json({"refresh_token": new_rt}),
            }))
        except redis.RedisError:
            # Postgres is next anyway; a crash before it commits would need this copy.
            log.error("could not write the pending refresh token of source=%s", sid)
        fault("after_pending_write")
        creds = stored.credentials.to_dict() | {"refresh_token": new_rt}
        now = utcnow()
        stmt = (
            update(Source)
            .where(col(Source.id) == stored.id, col(Source.credentials_version) == stored.version)
            .values(credentials_ciphertext=encrypt_json(creds),
                    credentials_version=stored.version + 1,
                    credentials_updated_at=now, updated_at=now)
        )
        with self.engine.begin() as conn:
            updated = conn.execute(stmt).rowcount
        fault("after_commit")
        if updated != 1:
            # Credentials changed under us (an admin pasted new ones, or a refresh outlived its
            # lease). Theirs win; our pending copy is now stale and is cleaned up next time.
            log.error("refresh token of source=%s changed during rotation (version %d); kept "
                      "the newer stored credentials", sid, stored.version)
            return
        try:
            self.redis.delete(key)
        except redis.RedisError:
            log.warning("could not delete the pending refresh token of source=%s (stale now)",
                        sid)
        fault("after_pending_delete")

    def _mark_reauthorize(self, stored: StoredSource) -> None:
        stmt = (
            update(Source)
            .where(col(Source.id) == stored.id, col(Source.credentials_version) == stored.version)
            .values(status=SourceStatus.REAUTHORIZE, status_message=REAUTHORIZE_MESSAGE,
                    updated_at=utcnow())
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
        with contextlib.suppress(redis.RedisError):
            self.redis.delete(pending_key(str(stored.id)))
        log.error("source=%s needs re-authorisation: refresh token refused", stored.id)
