"""Schemathesis over our own OpenAPI document: no input yields a 5xx, and every response,
errors included, matches the status codes, media types and schemas the document declares."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from api.ratelimit import RateLimit
from tests.api.helpers import World

# The flood guard would answer most generated requests with 429 and hide the handlers.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(rate_limit=RateLimit(limit=10**9))
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Bounded so the whole API suite stays around a minute; raise locally to hunt (see README).
MAX_EXAMPLES = 12


@pytest.fixture(scope="module")
def real_ids(world: World) -> dict[str, Any]:
    seed = world.seed_a
    test = world.client.post(f"/v1/sources/{world.source_a['id']}/connection-tests",
                             headers=world.a.headers).json()
    return {
        "tenant": world.a.key, "tenant_id": world.a.id,
        "source_id": world.source_a["id"], "test_id": test["id"], "run_id": str(seed.run_id),
        "identity_id": str(seed.identity_id), "account_id": seed.users["u-alice"],
        "group_id": seed.group_id, "role_id": seed.role_id, "meeting_id": seed.meeting_id,
    }


def _well_formed(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return str(value).isdigit() and 0 < int(value) < 2**63


def _point_at_real_rows(case: Any, ids: dict[str, Any]) -> None:
    """Random ids only ever find nothing; well-formed ones are swapped for seeded rows so the
    handlers' success paths are fuzzed too (malformed ones stay, to exercise 422s)."""
    for name, value in (case.path_parameters or {}).items():
        if name in ids and _well_formed(value):
            case.path_parameters[name] = ids[name]


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
def test_no_input_breaks_the_api_or_its_schema(
    case: Any, real_ids: dict[str, Any], admin_key: str
) -> None:
    _point_at_real_rows(case, real_ids)
    key = admin_key if case.path.startswith("/v1/tenants") else real_ids["tenant"]
    case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)
