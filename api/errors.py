"""Errors as RFC 9457 problem details, from one base class and one handler each.

Tree::
    DomainError(message, status_code)      rendered by ``_domain_error``
    ├── BadRequest            400  (field, reason)
    ├── Unauthorized          401
    ├── Forbidden             403
    ├── NotFound              404  (also: another tenant's id, so nothing leaks)
    ├── Conflict              409
    ├── PayloadTooLarge       413
    ├── Unprocessable         422  (field, reason) for rules pydantic cannot express
    ├── RateLimited           429  (retry_after)
    └── ServiceUnavailable    503  (checks)

Postgres, Redis or the broker unreachable mid-request becomes 503 with the dependency named in
``checks`` and a ``Retry-After`` (a fault of ours that passes, not the client's and not a 500).
Payload validation (pydantic) becomes 422 with ``errors: [{field, in, reason}]``; malformed
JSON becomes 400. Error bodies never echo input values: a rejected body may hold a secret.
Anything unexpected becomes a 500 problem without internals (and is logged with its traceback).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import kombu.exceptions
import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("api.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE_BASE = "https://activity-insights.example/problems/"


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. credentials.client_id")
    location: str = Field(description="body, query, path, header or file")
    reason: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    instance: str | None = None
    errors: list[FieldError] | None = None
    retry_after: int | None = None
    checks: dict[str, str] | None = None


class DomainError(Exception):
    """Base of every error the API raises on purpose; one handler renders them all."""

    status_code: int = 400
    slug: str = "bad-request"

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        *,
        field: str | None = None,
        location: str = "body",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.field = field
        self.location = location
        self.headers = headers or {}

    def extra(self) -> dict[str, Any]:
        return {}


class BadRequest(DomainError):
    status_code = 400
    slug = "bad-request"


class Unauthorized(DomainError):
    status_code = 401
    slug = "unauthorized"

    def __init__(self, message: str = "a valid API key is required") -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="api"'})


class Forbidden(DomainError):
    status_code = 403
    slug = "forbidden"


class NotFound(DomainError):
    status_code = 404
    slug = "not-found"

    def __init__(self, what: str = "resource") -> None:
        super().__init__(f"{what} not found")


class Conflict(DomainError):
    status_code = 409
    slug = "conflict"


class PayloadTooLarge(DomainError):
    status_code = 413
    slug = "payload-too-large"


class Unprocessable(DomainError):
    status_code = 422
    slug = "validation-error"


class RateLimited(DomainError):
    status_code = 429
    slug = "rate-limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many requests for this API key; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after

    def extra(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}


class ServiceUnavailable(DomainError):
    status_code = 503
    slug = "unavailable"

    def __init__(self, message: str, checks: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.checks = checks

    def extra(self) -> dict[str, Any]:
        return {"checks": self.checks} if self.checks is not None else {}


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    instance: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": _TYPE_BASE + slug if slug else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors is not None:
        body["errors"] = errors
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> tuple[str, str]:
    parts = [str(p) for p in loc]
    location = "body"
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        location, parts = parts[0], parts[1:]
    return location, ".".join(parts) or location


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    errors = None
    if exc.field is not None:
        errors = [{"field": exc.field, "location": exc.location, "reason": exc.message}]
    return problem_response(
        exc.status_code,
        exc.message,
        slug=exc.slug,
        instance=request.url.path,
        errors=errors,
        headers=exc.headers,
        **exc.extra(),
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, str]] = []
    malformed = False
    for err in exc.errors():
        location, field = _field_path(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            malformed = True
        # Only the message: pydantic's "input" may be a client secret.
        errors.append({"field": field, "location": location, "reason": str(err.get("msg", ""))})
    if malformed:
        return problem_response(
            400, "request body is not valid JSON", slug="malformed-json",
            instance=request.url.path, errors=errors,
        )
    return problem_response(
        422, "request validation failed", slug="validation-error",
        instance=request.url.path, errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(
        exc.status_code,
        str(exc.detail) if exc.status_code != 404 else "no such endpoint",
        instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


# How long a client should wait before trying again while a dependency is down.
UNAVAILABLE_RETRY_AFTER = 15


def _unavailable(request: Request, dependency: str, detail: str) -> JSONResponse:
    return problem_response(
        503, detail, slug="unavailable", instance=request.url.path,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
        checks={dependency: "unreachable"}, retry_after=UNAVAILABLE_RETRY_AFTER,
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if not (isinstance(exc, OperationalError) or exc.connection_invalidated):
        return await _unexpected(request, exc)
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                type(exc.orig).__name__)
    return _unavailable(request, "postgres",
                        "the database is unreachable; nothing was changed, try again shortly")


async def _redis_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("Redis unavailable on %s %s: %s", request.method, request.url.path,
                type(exc).__name__)
    return _unavailable(request, "redis", "Redis is unreachable; try again shortly")


async def _broker_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("broker unavailable on %s %s: %s", request.method, request.url.path,
                type(exc).__name__)
    return _unavailable(request, "broker", "the task queue is unreachable; try again shortly")


async def _unexpected(request: Request, _exc: Exception) -> JSONResponse:
    # Logged with the traceback for operators; the client sees no internals. Request bodies
    # are never logged (they may hold credentials).
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        500, "internal error; the failure was logged", slug="internal", instance=request.url.path
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(redis.ConnectionError, _redis_error)
    app.add_exception_handler(redis.TimeoutError, _redis_error)
    app.add_exception_handler(kombu.exceptions.OperationalError, _broker_error)
    app.add_exception_handler(Exception, _unexpected)


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


# Declared on routers so the OpenAPI document (and schemathesis) knows every error shape.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("Bad request (field and reason in errors)"),
    401: _problem("Missing, unknown or revoked API key"),
    403: _problem("This key may not use this endpoint"),
    404: _problem("Not found (or belongs to another tenant)"),
    409: _problem("Conflicts with existing state (duplicate name, disabled source)"),
    413: _problem("Payload too large"),
    422: _problem("Validation failed (field and reason in errors)"),
    429: _problem("Too many requests for this API key"),
    503: _problem("A dependency (Postgres, Redis, broker) is unreachable"),
}


def install_problem_openapi(app: FastAPI) -> None:
    """Error responses are served as application/problem+json; say so in the document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                for code, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if code.startswith(("4", "5")) and "application/json" in content:
                        content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
