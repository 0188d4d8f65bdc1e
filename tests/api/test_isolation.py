"""Tenant isolation: every endpoint, tried with another tenant's key and this tenant's ids,
answers 404 (never 403, never data); lists show only the caller's rows."""

from __future__ import annotations

import re
from typing import Any

import pytest

from api.main import create_app
from tests.api.helpers import World

# Endpoints that only the admin key may call; tested in test_tenants / test_keys.
_ADMIN_PREFIX = "/v1/tenants"
# Zoom's webhook endpoint takes no key (the signature authenticates; test_webhooks.py).
_UNKEYED_PREFIX = "/v1/webhooks/"
_BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/sources/{source_id}"): {"description": "hijacked"},
    ("POST", "/v1/sources/{source_id}/activity-syncs"): None,
}
_QUERIES: dict[tuple[str, str], str] = {
    ("DELETE", "/v1/sources/{source_id}"): "?confirm=zoom-a",
}


# Enumerated from the OpenAPI document, so a new endpoint is tested without being listed here.
SCHEMA = create_app().openapi()


def _tenant_routes() -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in SCHEMA["paths"].items()
        if path.startswith("/v1/") and not path.startswith((_ADMIN_PREFIX, _UNKEYED_PREFIX))
        for method in item
    ]


def _query_params(method: str, path: str) -> set[str]:
    operation = SCHEMA["paths"][path][method.lower()]
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}


def _answers_items(method: str, path: str) -> bool:
    ok = SCHEMA["paths"][path][method.lower()]["responses"].get("200", {})
    ref = ok.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
    return "items" in SCHEMA["components"]["schemas"].get(ref.rpartition("/")[2], {}).get(
        "properties", {})


ROUTES = _tenant_routes()
WITH_IDS = [r for r in ROUTES if "{" in r[1]]
# Lists: the GETs without ids that answer a page of items (reports' summary and page are not).
LISTS = [r for r in ROUTES if "{" not in r[1] and r[0] == "GET" and _answers_items(*r)]


@pytest.fixture(scope="module")
def ids(world: World) -> dict[str, Any]:
    test = world.client.post(f"/v1/sources/{world.source_a['id']}/connection-tests",
                             headers=world.a.headers).json()
    seed = world.seed_a
    return {
        "source_id": world.source_a["id"], "test_id": test["id"], "run_id": str(seed.run_id),
        "identity_id": str(seed.identity_id), "account_id": seed.users["u-alice"],
        "group_id": seed.group_id, "role_id": seed.role_id, "meeting_id": seed.meeting_id,
    }


def test_every_id_route_is_covered() -> None:
    params = {p for _, path in WITH_IDS for p in re.findall(r"{(\w+)}", path)}
    assert params == {"source_id", "test_id", "run_id", "identity_id", "account_id",
                      "group_id", "role_id", "meeting_id"}
    assert len(WITH_IDS) >= 20


@pytest.mark.parametrize(("method", "path"), WITH_IDS, ids=[f"{m} {p}" for m, p in WITH_IDS])
def test_another_tenants_ids_answer_404(
    world: World, ids: dict[str, Any], method: str, path: str
) -> None:
    url = path.format(**ids) + _QUERIES.get((method, path), "")
    body = _BODIES.get((method, path))
    response = world.client.request(method, url, json=body, headers=world.b.headers)
    assert response.status_code == 404, (method, url, response.text)
    assert response.json()["detail"].endswith("not found")
    # The owner still sees its untouched source.
    mine = world.client.get(f"/v1/sources/{ids['source_id']}", headers=world.a.headers)
    assert mine.status_code == 200
    assert mine.json()["description"] != "hijacked"


@pytest.mark.parametrize("path", [p for _, p in LISTS])
def test_lists_show_only_the_callers_rows(world: World, ids: dict[str, Any], path: str) -> None:
    response = world.client.get(path, headers=world.b.headers)
    assert response.status_code == 200, response.text
    text = response.text
    a_ids = [ids["source_id"], ids["identity_id"], ids["run_id"]]
    assert not any(i in text for i in a_ids)
    for item in response.json()["items"]:
        account = item.get("account", item)
        assert account.get("source_id", world.source_b["id"]) == world.source_b["id"]


@pytest.mark.parametrize(
    "query",
    ["source_id={source_id}", "account_id={account_id}", "host_account_id={account_id}"],
)
def test_filters_naming_another_tenants_ids_answer_404(
    world: World, ids: dict[str, Any], query: str
) -> None:
    name = query.split("=")[0]
    paths = [path for method, path in LISTS if name in _query_params(method, path)]
    assert paths
    for path in paths:
        response = world.client.get(f"{path}?{query.format(**ids)}", headers=world.b.headers)
        assert response.status_code == 404, (path, response.text)


def test_writes_cannot_reference_another_tenants_source(world: World, ids: dict[str, Any]) -> None:
    response = world.client.post(
        "/v1/sources",
        json={"name": "sneaky", "grant_type": "account_credentials",
              "governance_source_id": ids["source_id"],
              "credentials": {"account_id": "a", "client_id": "b", "client_secret": "c"}},
        headers=world.b.headers,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "governance_source_id"
