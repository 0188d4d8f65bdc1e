"""A source's stored credentials, Zoom's OAuth endpoint, and refresh-token rotation.

Credentials are decrypted in memory only, inside the call that needs them; ``Credentials`` shows
nothing secret in ``repr``. The fetcher here (``SourceTokenFetcher``) runs *inside* the token
cache's per-source lock (``worker.tokens.cache``), so one process at a time refreshes a source.

Server-to-Server apps (``account_credentials``): ask for a token; nothing to persist, nothing
rotates, so a request whose answer was lost is simply sent again (``OAUTH_RETRIES``).

General apps (``refresh_token``): Zoom rotates refresh tokens; once it has issued RT n+1, RT n is
refused with ``invalid_grant``. **The window** in which a crash or a lost answer loses RT n+1 is
the whole token request: from the moment the request may have reached Zoom until its answer is
in Redis. That is one Zoom round trip plus one Redis write; httpx bounds it by the OAuth timeout
(``zoom_timeout_seconds``) per phase: connect, send, and each read of the answer. It is not "one
Redis write", and Zoom offers nothing to make it shorter: no idempotency key, no way to ask which
refresh token is current, and the only test of a refresh token is to spend it. So nothing else
runs inside the window (no retry, no backoff; the answer goes to Redis before Postgres is even
touched) and the window is *marked* before it opens, so that a crash or a lost answer inside it
is detected by the next refresher instead of discovered at the next ``invalid_grant``. (The
cache lock's lease, 4 x the timeout, normally outlasts the request; a refresh that outlives it
anyway leaves its mark to the next holder, who reports instead of sending the token again.)

All the state lives in one Redis key per source, ``ai:rt-pending:<source>`` (run Redis with
append-only persistence in production), holding the ``credentials_version`` v of the RT it is
about (fault points in brackets; tests SIGKILL the process at each):

1. Read RT n and v from Postgres, then the key. ``answered`` with base v: a previous holder died
   after Zoom's answer and before its commit; its RT n+1 is the only live one (Zoom's rotation
   is immediate), so it is written through to Postgres (v -> v+1) before anything is sent.
   ``in_flight`` with base v: see "outcome unknown" below. Any other base: stale (committed
   already, or an admin replaced the credentials): deleted.
2. [before_zoom_call] Write ``in_flight`` (base v). No mark, no request: if Redis cannot take
   the mark, nothing is sent. [after_inflight_mark]
3. Send RT n, once. [after_zoom_answer] At once overwrite the key with ``answered`` (base v,
   Fernet(RT n+1)).
4. [after_pending_write] ``UPDATE source SET credentials_ciphertext=..., credentials_version=v+1
   WHERE id=... AND credentials_version=v``; commit.
5. [after_commit] Delete the key. [after_pending_delete]
6. Return the access token; the cache publishes it (so it is never used before step 4).

A refresh token is sent once; only while a connection test runs (below) may one whose earlier
request got no answer be sent again. What ends a flight:
- an answer with tokens: steps 3-5.
- ``invalid_grant``: RT n is dead for sure: ``reauthorize`` with ``REAUTHORIZE_MESSAGE`` (asks
  the admin to paste a new refresh token), key deleted, ``ZoomAuthError(reauthorize=True)``.
- a refusal that says nothing about the refresh token (``invalid_client``, a disabled app) or a
  connection that was never opened (the request cannot have reached Zoom; retried): the mark
  is removed, unless it stood for an earlier unresolved flight, which it goes on recording.
- no usable answer once the request may have been sent (a read/write timeout, a dropped
  connection, a 5xx, an unreadable 200), or a mark found by the next refresher (its holder
  died in the window): **the outcome is unknown**. Zoom may have rotated (RT n dead, RT n+1
  lost with the answer) or not (RT n still works). The source goes at once to ``reauthorize``
  with ``rotation_unknown_message`` (distinct from the revoked message), its schedules stop,
  a connection test is queued unless one is queued or running, and ``RotationOutcomeUnknown``
  (retryable) is raised. The mark stays: every refresher after that raises the same without
  calling Zoom, except while a connection test of the source is running. That test is the
  probe (its result is recorded where the admin looks): the refresher holding the lock then
  (the test itself, or a run asking at the same moment) sends RT n once, with a fresh mark.
  If Zoom accepts it, the rotation completes and the test puts the source back to ``active``;
  ``invalid_grant`` makes it the plain revoked case above; no answer again queues the next
  test after a pause (``AUTO_TESTS`` in all, so a short Zoom outage needs no admin). New
  credentials from an admin bump the version, which retires the mark.

What a SIGKILL leaves behind, then: before 2, nothing; after the mark and before the answer is
written, the mark (outcome unknown, reported by the next refresher); at 4, the answered RT
(written through by the next refresher); at 5 and after, a stale key or a clean state. No case
is silent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import httpx
import redis
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from worker import dispatch
from worker.kit.crypto import decrypt_json, encrypt_json, redact
from worker.models.base import utcnow
from worker.models.enums import GrantType, SourceStatus, TestStatus
from worker.models.runs import ConnectionTest
from worker.models.tenancy import Source
from worker.tokens.cache import AccessToken, error_key, token_key
from worker.tokens.faults import fault
from worker.zoom.codes import REAUTHORIZE_MESSAGE
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
# cache lock's lease is sized for a few of them). Refresh-token grants are retried only when
# the connection was never opened: their request may have spent the token.
OAUTH_RETRIES = 2
# Failures that happen before a byte of the request left: Zoom cannot have seen it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

# The states of the pending key (see the module docstring).
IN_FLIGHT = "in_flight"
ANSWERED = "answered"
# Connection tests queued by themselves for one unknown outcome, the first at once, then after
# 1, 2, 4, 8 and 16 minutes: a Zoom outage longer than that leaves it to the admin.
AUTO_TESTS = 6
RETEST_AFTER_SECONDS = 60.0

_UNKNOWN = (
    "Zoom's answer to a refresh of this source's token was lost (a timeout, a dropped "
    "connection or a stopped worker), so it is not known whether Zoom has already replaced the "
    "refresh token."
)
_IF_IT_FAILS = (
    "if it fails, re-authorise the app in the Zoom Marketplace and paste the new refresh token "
    "into this source's credentials."
)


def rotation_unknown_message(test_queued: bool) -> str:
    """What the admin reads while the outcome of a refresh-token rotation is unknown."""
    if test_queued:
        return (f"{_UNKNOWN} Syncing is paused and a connection test has been queued to find "
                f"out: if it passes, syncing resumes by itself; {_IF_IT_FAILS}")
    return (f"{_UNKNOWN} Syncing is paused until a connection test passes: run one to find "
            f"out; {_IF_IT_FAILS}")


def is_rotation_unknown(status_message: str | None) -> bool:
    """Whether a source's status message is the one of an unknown rotation outcome (not a
    refresh token Zoom rejected)."""
    return bool(status_message) and str(status_message).startswith(_UNKNOWN)


class RotationOutcomeUnknown(ZoomUnavailable):
    """A refresh-token request may have reached Zoom but its answer did not reach us, so Zoom
    may have rotated the token. Retryable: a connection test settles it (module docstring)."""


def pending_key(source_id: str) -> str:
    return f"{PENDING_PREFIX}{source_id}"


def forget_source_credentials(client: redis.Redis, source_id: str) -> None:
    """After an admin changed a source's credentials: drop its cached access token, the
    remembered auth refusal and any pending rotated refresh token or in-flight mark, so the next
    task starts from the new credentials. The refresh lock is left to its lease: deleting a held
    lock would let two refreshes run at once. Best effort: a stale access token still fails with
    401 (which evicts it) and the bumped credentials_version makes a stale pending key
    detectable."""
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
                                     "account_id": creds.account_id}, spends=False)

    def refresh(self, creds: Credentials, refresh_token: str) -> TokenGrant:
        """Spend ``refresh_token`` once. Raises ``RotationOutcomeUnknown`` when the request may
        have reached Zoom but no usable answer came back; it is never sent a second time."""
        return self._request(creds, {"grant_type": "refresh_token",
                                     "refresh_token": refresh_token}, spends=True)

    def _request(self, creds: Credentials, form: dict[str, str], *, spends: bool) -> TokenGrant:
        grant = form["grant_type"]
        attempt = 0
        while True:
            try:
                response = self.http.post(
                    self.oauth_url, data=form, auth=(creds.client_id, creds.client_secret),
                    timeout=self.timeout, headers={"Accept": "application/json"},
                )
            except _NOT_SENT as exc:
                error: ZoomError = ZoomUnavailable(
                    f"Zoom OAuth unreachable: {type(exc).__name__}",
                    admin_message="Zoom's sign-in service could not be reached; will retry.")
            except httpx.RequestError as exc:
                if spends:
                    raise _lost(grant, type(exc).__name__) from exc
                error = ZoomUnavailable(
                    f"Zoom OAuth unreachable: {type(exc).__name__}",
                    admin_message="Zoom's sign-in service could not be reached; will retry.")
            else:
                if response.status_code < 500:
                    try:
                        return self._parse(response, grant)
                    except ZoomBadResponse:
                        # A success we cannot read may still have rotated the token.
                        if spends and response.status_code < 400:
                            raise _lost(grant, f"unreadable {response.status_code}") from None
                        raise
                # An error page from Zoom's edge says nothing about whether the token service
                # behind it rotated.
                if spends:
                    raise _lost(grant, f"HTTP {response.status_code}")
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
            raise ZoomBadResponse("Zoom OAuth answer has an unexpected shape", None,
                                  response.status_code) from None


def _lost(grant: str, what: str) -> RotationOutcomeUnknown:
    return RotationOutcomeUnknown(f"answer to the {grant} grant lost after sending ({what})",
                                  admin_message=rotation_unknown_message(False))


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


@dataclass
class Mark:
    """The pending key of a source: an RT request in flight, or Zoom's answer to it."""

    state: str
    base_version: int
    refresh_token: str | None = field(default=None, repr=False)
    tests: int = 0  # connection tests queued by themselves to settle this flight


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

    def _rotate(self, stored: StoredSource) -> AccessToken:
        sid = str(stored.id)
        mark = self._read_mark(stored)
        if mark is not None and mark.state == ANSWERED and mark.refresh_token:
            stored = self._write_through(stored, mark.refresh_token)
            mark = None
        tests = 0
        if mark is not None:
            if not self._probe_running(stored):
                log.warning("source=%s: a refresh-token request of version %d got no answer "
                            "(lost, or its worker died); not sending it again", sid,
                            stored.version)
                self._report_unknown(stored, mark.tests, in_test=False)
            tests = mark.tests
            log.warning("source=%s: connection test probes the refresh token of version %d "
                        "whose last request got no answer", sid, stored.version)
        refresh_token = stored.credentials.refresh_token
        if not refresh_token:
            self._mark_reauthorize(stored)
            raise ZoomAuthError("source has no refresh token", "invalid_grant",
                                reauthorize=True, admin_message=REAUTHORIZE_MESSAGE)

        fault("before_zoom_call")
        self._write_mark(stored, Mark(IN_FLIGHT, stored.version, tests=tests))
        fault("after_inflight_mark")
        try:
            grant = self.oauth.refresh(stored.credentials, refresh_token)
        except RotationOutcomeUnknown as exc:
            log.error("source=%s: %s; refresh token %s may be spent", sid, exc.message,
                      redact(refresh_token, 2))
            self._report_unknown(stored, tests, in_test=self._probe_running(stored))
        except ZoomAuthError as exc:
            if not _is_invalid_grant(exc):
                self._land(stored, still_unknown=mark is not None)
                raise
            log.warning("refresh token refused source=%s token=%s", sid, redact(refresh_token, 2))
            self._mark_reauthorize(stored)
            raise ZoomAuthError(
                "the stored refresh token was refused (invalid_grant)", exc.code, exc.status,
                reauthorize=True, admin_message=REAUTHORIZE_MESSAGE,
            ) from None
        except ZoomError:
            # Never sent (the connection was not opened) or refused without a token: RT n is
            # exactly as alive as it was before this call.
            self._land(stored, still_unknown=mark is not None)
            raise
        fault("after_zoom_answer")
        self._persist(stored, grant.refresh_token or refresh_token)
        return grant.to_access_token()

    def _read_mark(self, stored: StoredSource) -> Mark | None:
        key = pending_key(str(stored.id))
        try:
            raw = self.redis.get(key)
        except redis.RedisError as exc:
            raise TokenCacheUnavailable(f"pending refresh token unreadable: "
                                        f"{type(exc).__name__}") from exc
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            base = int(data["base_version"])
            # Keys written before marks existed hold only an answer.
            state = str(data.get("state") or ANSWERED)
            rt = (str(decrypt_json(data["ciphertext"])["refresh_token"])
                  if state == ANSWERED else None)
            tests = int(data.get("tests") or 0)
        except Exception:
            # Unreadable: we cannot tell what was sent, so it counts as a flight with no answer.
            log.error("unreadable pending refresh-token key of source=%s", stored.id)
            return Mark(IN_FLIGHT, stored.version)
        if base != stored.version:
            # Older than Postgres: committed already, or the credentials were replaced.
            with contextlib.suppress(redis.RedisError):
                self.redis.delete(key)
            return None
        return Mark(state, base, rt, tests)

    def _write_mark(self, stored: StoredSource, mark: Mark) -> None:
        data: dict[str, Any] = {"state": mark.state, "base_version": mark.base_version,
                                "tests": mark.tests, "at": time.time(),
                                "by": f"{socket.gethostname()}:{os.getpid()}"}
        if mark.refresh_token:
            data["ciphertext"] = encrypt_json({"refresh_token": mark.refresh_token})
        try:
            self.redis.set(pending_key(str(stored.id)), json.dumps(data))
        except redis.RedisError as exc:
            raise TokenCacheUnavailable(f"refresh-token mark not written: "
                                        f"{type(exc).__name__}") from exc

    def _land(self, stored: StoredSource, *, still_unknown: bool) -> None:
        """End a flight that rotated nothing: drop the mark, unless it still records an earlier
        request whose answer was lost (a probe that learnt nothing)."""
        if still_unknown:
            return
        try:
            self.redis.delete(pending_key(str(stored.id)))
        except redis.RedisError:
            # The mark then makes the next refresher report an unknown outcome: a false
            # alarm that the connection test clears, never a silent loss.
            log.warning("could not clear the refresh-token mark of source=%s", stored.id)

    def _persist(self, stored: StoredSource, new_rt: str) -> None:
        sid = str(stored.id)
        if new_rt == stored.credentials.refresh_token:
            self._land(stored, still_unknown=False)
            return  # Zoom did not rotate: nothing new to keep.
        try:
            self._write_mark(stored, Mark(ANSWERED, stored.version, new_rt))
        except TokenCacheUnavailable:
            # Postgres is next anyway; a crash before it commits would need this copy.
            log.error("could not write the pending refresh token of source=%s", sid)
        fault("after_pending_write")
        updated = self._commit(stored, new_rt)
        fault("after_commit")
        if not updated:
            # Credentials changed under us (an admin pasted new ones, or a refresh outlived its
            # lease). Theirs win; our pending copy is now stale and is cleaned up next time.
            log.error("refresh token of source=%s changed during rotation (version %d); kept "
                      "the newer stored credentials", sid, stored.version)
            return
        try:
            self.redis.delete(pending_key(sid))
        except redis.RedisError:
            log.warning("could not delete the pending refresh token of source=%s (stale now)",
                        sid)
        fault("after_pending_delete")

    def _commit(self, stored: StoredSource, new_rt: str) -> bool:
        """Store ``new_rt`` as version v+1 if the row is still at version v."""
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
            return bool(conn.execute(stmt).rowcount == 1)

    def _write_through(self, stored: StoredSource, new_rt: str) -> StoredSource:
        """A previous holder got RT n+1 from Zoom and died before its commit: store it now."""
        log.warning("source=%s: storing the refresh token a previous refresh left pending",
                    stored.id)
        if not self._commit(stored, new_rt):
            return load_source(self.engine, stored.id)
        with contextlib.suppress(redis.RedisError):
            self.redis.delete(pending_key(str(stored.id)))
        creds = Credentials(**{**stored.credentials.__dict__, "refresh_token": new_rt})
        return StoredSource(stored.id, stored.grant_type, creds, stored.version + 1,
                            stored.zoom_account_id)

    # -- the source's state ----------------------------------------------------------------

    def _probe_running(self, stored: StoredSource) -> bool:
        """Whether a connection test of the source is running: it may spend the marked RT."""
        stmt = select(col(ConnectionTest.id)).where(
            col(ConnectionTest.source_id) == stored.id,
            col(ConnectionTest.status) == TestStatus.RUNNING,
        ).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(stmt).first() is not None

    def _report_unknown(self, stored: StoredSource, tests: int, *, in_test: bool) -> NoReturn:
        """The outcome of spending RT n is unknown: say so on the source, stop its schedules and
        queue a connection test to find out, unless one is queued or running already (one that
        is running here is the probe that just failed: a later one is queued, after a pause,
        at most ``AUTO_TESTS`` in all). Idempotent: every refresher that meets the mark comes
        here. The mark stays in Redis."""
        test: ConnectionTest | None = None
        message = rotation_unknown_message(False)
        with Session(self.engine, expire_on_commit=False) as session:
            source = session.get(Source, stored.id, with_for_update=True)
            # Credentials replaced meanwhile (the mark is stale), or switched off: leave it be.
            if (source is not None and source.credentials_version == stored.version
                    and source.status != SourceStatus.DISABLED):
                waiting = [TestStatus.QUEUED] if in_test else [TestStatus.QUEUED,
                                                                TestStatus.RUNNING]
                open_stmt = select(col(ConnectionTest.status)).where(
                    col(ConnectionTest.source_id) == stored.id,
                    col(ConnectionTest.status).in_(waiting),
                )
                open_tests = set(session.connection().execute(open_stmt).scalars())
                if not open_tests and tests < AUTO_TESTS:
                    test = ConnectionTest(tenant_id=source.tenant_id, source_id=source.id,
                                          status=TestStatus.QUEUED)
                    session.add(test)
                message = rotation_unknown_message(
                    test is not None or TestStatus.QUEUED in open_tests)
                source.status = SourceStatus.REAUTHORIZE
                source.status_message = message
                source.next_aggregation_at = None
                source.next_activity_at = None
                source.updated_at = utcnow()
                session.commit()
        if test is not None:
            try:
                self._write_mark(stored, Mark(IN_FLIGHT, stored.version, tests=tests + 1))
            except TokenCacheUnavailable:
                log.warning("could not count the connection test of source=%s", stored.id)
            countdown = RETEST_AFTER_SECONDS * 2 ** (tests - 1) if tests else None
            try:
                dispatch.send("zoom.test_connection", test.id, tenant_id=test.tenant_id,
                              source_id=test.source_id, countdown=countdown)
            except Exception:
                # The row is committed and queued: Postgres is the truth, and the sweep of
                # connection tests never picked up sends it again.
                log.warning("could not enqueue connection test %s of source=%s", test.id,
                            stored.id, exc_info=True)
        raise RotationOutcomeUnknown(
            f"outcome of the refresh-token rotation of source {stored.id} is unknown",
            admin_message=message,
        )

    def _mark_reauthorize(self, stored: StoredSource) -> None:
        stmt = (
            update(Source)
            .where(col(Source.id) == stored.id, col(Source.credentials_version) == stored.version)
            .values(status=SourceStatus.REAUTHORIZE, status_message=REAUTHORIZE_MESSAGE,
                    next_aggregation_at=None, next_activity_at=None, updated_at=utcnow())
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
        with contextlib.suppress(redis.RedisError):
            self.redis.delete(pending_key(str(stored.id)))
        log.error("source=%s needs re-authorisation: refresh token refused", stored.id)
