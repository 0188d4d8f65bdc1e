"""The ASGI application: routers, error handlers and middleware, nothing else.

Run it with ``uvicorn --factory api.main:create_app``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from api.docs import install_docs
from api.errors import install_error_handlers, install_problem_openapi
from api.middleware import MAX_BODY_BYTES, BodySizeLimit
from api.ratelimit import RateLimit
from api.routes import (
    accounts,
    activity,
    connection_tests,
    groups,
    health,
    identities,
    insights,
    keys,
    meetings,
    metrics,
    reports,
    roles,
    runs,
    sources,
    tenants,
    webhooks,
)
from worker import logs
from worker.settings import get_settings

DESCRIPTION = """\
Activity Insights for Zoom: tenants, Zoom sources, connection tests, runs, and the accounts,
activity and insights the workers collect.

Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`. Tenant keys see only
their tenant (another tenant's ids answer 404); the admin key manages tenants and keys.
Errors are RFC 9457 problem details (`application/problem+json`); bad input names its field.

Limits: request bodies up to 8 MiB (413 beyond); up to 10,000 identities per JSON or CSV
upload (413 beyond); 600 requests a minute per key (429 with `Retry-After` beyond).
Connection tests and runs answer 202 at once; poll the `links.self` they return.
"""


def create_app(
    *, rate_limit: RateLimit | None = None, max_body_bytes: int = MAX_BODY_BYTES
) -> FastAPI:
    app = FastAPI(
        title="Activity Insights for Zoom",
        version="1.0.0",
        description=DESCRIPTION,
        docs_url=None,
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    install_docs(app)
    app.state.rate_limit = rate_limit
    for module in (
        health, tenants, keys, sources, connection_tests, runs, identities,
        accounts, groups, roles, activity, meetings, insights, reports, webhooks, metrics,
    ):
        app.include_router(module.router)
    install_error_handlers(app)
    install_problem_openapi(app)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    _log_format()
    return app


def _log_format() -> None:
    # uvicorn set up its loggers before calling this factory: give their handlers our format.
    settings = get_settings()
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logs.reformat(logging.getLogger(name), settings.log_format, settings.log_level)
