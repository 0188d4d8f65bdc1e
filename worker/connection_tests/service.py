"""Connection test: can this source's app get a token, call Zoom, and read what we need?

The test is the gate of a source's life: success makes it `active` and schedules it (and, the
first time, starts aggregation then correlation, and activity sync at once); failure makes it
`failing` (or `reauthorize` for a revoked refresh token) and stops its schedules until a good test.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from worker import clients
from worker.db import session_scope
from worker.kit.crypto import CredentialsUnreadable
from worker.models import (
    ConnectionTest,
    RunKind,
    RunTrigger,
    Source,
    SourceStatus,
    SyncRun,
    TestStatus,
    utcnow,
)
from worker.runs.followups import send_after_commit, stamp
from worker.runs.lifecycle import is_transient, new_run
from worker.runs.sweep import running_test_lease
from worker.scheduling.service import compute_next
from worker.zoom import codes
from worker.zoom.errors import ZoomAuthError, ZoomError, ZoomScopeError

log = logging.getLogger(__name__)

# What aggregation and activity sync call. Each path is satisfied by its classic or any of its
# granular scope names (worker.zoom.endpoints); a missing one is named in the family the app's
# granted scopes use (worker.zoom.codes.scope_hint).
REQUIRED_PATHS = (
    "/users",
    "/groups",
    "/groups/{id}/members",
    "/report/activities",
    "/report/users",
    "/report/users/{id}/meetings",
    "/report/meetings/{id}/participants",
    "/report/daily",
    "/report/operationlogs",
)
# Roles degrade gracefully: aggregation takes role ids from the users instead.
OPTIONAL_PATHS = ("/roles", "/roles/{id}/members")


class Token(Protocol):
    @property
    def scopes(self) -> list[str]: ...


class Probe(Protocol):
    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]: ...


def missing_scopes(granted: list[str], paths: tuple[str, ...]) -> list[str]:
    """The scope to add for each path the token cannot call, named in the app's family."""
    return codes.missing_scopes(granted, paths)


scope_message = codes.scope_message


def auth_message(exc: ZoomAuthError) -> str:
    known = codes.oauth_message(exc.code, reauthorize=exc.reauthorize)
    if known is not None:
        return known
    if "client" in exc.message.lower():
        return codes.INVALID_CLIENT_MESSAGE
    return f"Zoom refused the credentials: {exc.admin_message}"


def _default_token(source_id: uuid.UUID) -> Token:
    return clients.token_for_source(source_id)


def _default_client(source_id: uuid.UUID) -> Probe:
    return clients.client_for_source(source_id)


def run_connection_test(
    test_id: uuid.UUID,
    *,
    get_token: Callable[[uuid.UUID], Token] | None = None,
    get_client: Callable[[uuid.UUID], Probe] | None = None,
    now: datetime | None = None,
    enqueue: bool = True,
) -> ConnectionTest:
    """Run one test and record it; returns the finished record (detached)."""
    get_token = get_token or _default_token
    get_client = get_client or _default_client
    with session_scope() as session:
        test = session.get(ConnectionTest, test_id)
        if test is None:
            raise LookupError(f"connection test {test_id} does not exist")
        if test.status in (TestStatus.SUCCEEDED, TestStatus.FAILED):
            return test  # a redelivered task: the result is already recorded
        test.status = TestStatus.RUNNING
        test.started_at = utcnow()
        # A killed worker's test is sent again by the sweep once this has passed.
        test.lease_until = test.started_at + running_test_lease()
        source_id = test.source_id

    result: dict[str, Any] = {"granted_scopes": [], "missing_scopes": [],
                              "missing_optional_scopes": [], "zoom_error_code": None}
    account_id: str | None = None
    auth_error: ZoomAuthError | None = None
    started = time.perf_counter()
    try:
        token = get_token(source_id)
        result["token_ms"] = int((time.perf_counter() - started) * 1000)
        granted = sorted(set(token.scopes or []))
        result["granted_scopes"] = granted
        result["missing_scopes"] = missing_scopes(granted, REQUIRED_PATHS)
        result["missing_optional_scopes"] = missing_scopes(granted, OPTIONAL_PATHS)
        call_started = time.perf_counter()
        client = get_client(source_id)
        try:
            me = client.get("/users/me")
            account_id = me.get("account_id") or None
        except ZoomAuthError:
            raise
        except ZoomError as exc:
            # `me` is not a user for some S2S apps; the cheapest list call proves the rest.
            log.info("GET /users/me failed (%s); falling back to GET /users", exc)
            client.get("/users", {"page_size": 1})
        result["call_ms"] = int((time.perf_counter() - call_started) * 1000)
        if result["missing_scopes"]:
            # Zoom answered fine: the gap is ours to report, with no Zoom code of its own.
            result["message"] = scope_message(result["missing_scopes"])
            ok = False
        else:
            ok = True
            result["message"] = "connected" + (
                f"; optional {scope_message(result['missing_optional_scopes'])}"
                if result["missing_optional_scopes"] else ""
            )
    except ZoomAuthError as exc:
        auth_error = exc
        ok = False
        result["zoom_error_code"] = None if exc.code is None else str(exc.code)
        result["message"] = auth_message(exc)
    except ZoomScopeError as exc:
        ok = False
        missing = exc.missing or result["missing_scopes"] or [
            codes.scope_hint("/users", result["granted_scopes"])]
        result["missing_scopes"] = missing
        result["zoom_error_code"] = None if exc.code is None else str(exc.code)
        result["message"] = scope_message(missing)
    except ZoomError as exc:
        ok = False
        result["zoom_error_code"] = None if exc.code is None else str(exc.code)
        result["message"] = f"Zoom call failed: {exc.admin_message}"
        result["transient"] = exc.retryable
    except CredentialsUnreadable as exc:
        ok = False
        result["message"] = f"{exc}: re-enter the client secret (and refresh token) of the source"
    except Exception as exc:
        if is_transient(exc) and not isinstance(exc, ZoomError):
            # Redis or Postgres briefly gone: nothing is known about the source yet; the task
            # retries (and the running test's lease lets the sweep find it otherwise).
            raise
        # A test must never stay "running": record the failure, then let the task log it.
        log.exception("connection test %s of source %s crashed", test_id, source_id)
        _record(test_id, False, {**result, "message": f"internal error ({type(exc).__name__})",
                                 "transient": True}, None, None, now=now, enqueue=False)
        raise
    return _record(test_id, ok, result, account_id, auth_error, now=now, enqueue=enqueue)


def _record(
    test_id: uuid.UUID,
    ok: bool,
    result: dict[str, Any],
    account_id: str | None,
    auth_error: ZoomAuthError | None,
    *,
    now: datetime | None,
    enqueue: bool,
) -> ConnectionTest:
    now = now or utcnow()
    to_enqueue: list[SyncRun] = []
    with session_scope() as session:
        test = session.get(ConnectionTest, test_id, with_for_update=True)
        assert test is not None
        source = session.get(Source, test.source_id, with_for_update=True)
        assert source is not None
        test.status = TestStatus.SUCCEEDED if ok else TestStatus.FAILED
        test.finished_at = utcnow()
        test.lease_until = None
        test.token_ms = result.get("token_ms")
        test.call_ms = result.get("call_ms")
        test.granted_scopes = list(result["granted_scopes"])
        test.missing_scopes = list(result["missing_scopes"])
        test.missing_optional_scopes = list(result["missing_optional_scopes"])
        test.zoom_error_code = result["zoom_error_code"]
        test.message = str(result.get("message", ""))

        source.last_test_at = now
        if account_id and not source.zoom_account_id:
            source.zoom_account_id = account_id
        first_success = ok and source.last_test_ok_at is None
        if ok:
            source.last_test_ok_at = now
            if source.status != SourceStatus.DISABLED:
                source.status = SourceStatus.ACTIVE
                source.status_message = test.message
        elif result.get("transient"):
            # Zoom was down, not the source: keep its state and schedules as they were.
            pass
        elif source.status != SourceStatus.DISABLED:
            reauth = auth_error is not None and (
                auth_error.reauthorize or str(auth_error.code) in codes.OAUTH_REFRESH_INVALID
            )
            source.status = SourceStatus.REAUTHORIZE if reauth else SourceStatus.FAILING
            source.status_message = f"{test.message} (scheduling stopped until a good test)"
        source.updated_at = utcnow()
        compute_next(source, now)

        if first_success and source.status == SourceStatus.ACTIVE:
            if source.aggregation_enabled:
                to_enqueue.append(new_run(source, RunKind.AGGREGATION, RunTrigger.AFTER_TEST))
            if source.activity_enabled:
                to_enqueue.append(new_run(source, RunKind.ACTIVITY, RunTrigger.AFTER_TEST))
            for run in to_enqueue:
                session.add(run)
                if enqueue:
                    send_after_commit(session, run)
                else:
                    stamp(run)
        log.info("connection test %s of source %s: %s (%s)", test_id, source.id,
                 test.status, test.zoom_error_code or "ok")
    return test
