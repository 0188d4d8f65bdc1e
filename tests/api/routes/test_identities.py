"""Identities: bulk upsert as JSON or CSV, size limits, list, read with accounts."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.routes.identities import MAX_ROWS
from tests.api.helpers import TenantCtx, create_source


def _csv(client: TestClient, tenant: TenantCtx, content: bytes | str):  # type: ignore[no-untyped-def]
    data = content.encode() if isinstance(content, str) else content
    return client.post("/v1/identities/csv", files={"file": ("people.csv", data, "text/csv")},
                       headers=tenant.headers)


def test_a_json_upsert_inserts_then_updates_by_external_id(
    client: TestClient, tenant: TenantCtx
) -> None:
    rows = [{"external_id": f"e{i}", "email": f"User{i}@Acme.example"} for i in range(3)]
    first = client.post("/v1/identities", json=rows, headers=tenant.headers)
    assert first.json() == {"received": 3, "inserted": 3, "updated": 0}
    rows[0]["display_name"] = "Renamed"
    again = client.post("/v1/identities", json=[*rows, {"external_id": "e3"}],
                        headers=tenant.headers)
    assert again.json() == {"received": 4, "inserted": 1, "updated": 3}
    found = client.get("/v1/identities?email=user0@acme.EXAMPLE", headers=tenant.headers).json()
    assert [(i["external_id"], i["display_name"]) for i in found["items"]] == [("e0", "Renamed")]


def test_a_repeated_external_id_in_one_request_keeps_the_last_row(
    client: TestClient, tenant: TenantCtx
) -> None:
    rows = [{"external_id": "dup", "email": "a@x.example"},
            {"external_id": "dup", "email": "b@x.example"}]
    response = client.post("/v1/identities", json=rows, headers=tenant.headers)
    assert response.json() == {"received": 2, "inserted": 1, "updated": 0}
    listed = client.get("/v1/identities", headers=tenant.headers).json()["items"]
    assert [i["email"] for i in listed] == ["b@x.example"]


def test_thousands_of_identities_are_taken_in_one_request_and_paged_back(
    client: TestClient, tenant: TenantCtx
) -> None:
    rows = [{"external_id": f"emp-{i:05d}", "email": f"p{i}@acme.example"} for i in range(5000)]
    response = client.post("/v1/identities", json=rows, headers=tenant.headers)
    assert response.json()["inserted"] == 5000
    seen: list[str] = []
    cursor = ""
    while True:
        page = client.get(f"/v1/identities?limit=500&cursor={cursor}",
                          headers=tenant.headers).json()
        seen += [i["external_id"] for i in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert seen == [r["external_id"] for r in rows]


def test_more_rows_than_the_limit_is_413(client: TestClient, tenant: TenantCtx) -> None:
    rows = [{"external_id": str(i)} for i in range(MAX_ROWS + 1)]
    response = client.post("/v1/identities", json=rows, headers=tenant.headers)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    csv_rows = "external_id\n" + "\n".join(str(i) for i in range(MAX_ROWS + 1))
    assert _csv(client, tenant, csv_rows).status_code == 413


def test_a_body_over_the_size_cap_is_413_before_it_is_parsed(tenant: TenantCtx) -> None:
    from api.main import create_app
    from tests.api.helpers import TestClient as Client

    with Client(create_app(max_body_bytes=1024)) as small:
        big = "external_id,email\n" + "x" * 2000 + ",a@b.example\n"
        response = _csv(small, tenant, big)
        assert response.status_code == 413
        assert response.json()["status"] == 413
        chunked = small.post("/v1/identities", content=iter([b"[" + b" " * 2000, b"]"]),
                             headers={**tenant.headers, "Content-Type": "application/json"})
        assert chunked.status_code == 413


def test_a_csv_upload_maps_extra_columns_to_attributes(
    client: TestClient, tenant: TenantCtx
) -> None:
    content = "\ufeffexternal_id,email,display_name,department\nE1,a@acme.example,Ann,Sales\n" \
              "E2,b@acme.example,,\n"
    response = _csv(client, tenant, content)
    assert response.json() == {"received": 2, "inserted": 2, "updated": 0}
    items = client.get("/v1/identities", headers=tenant.headers).json()["items"]
    assert [(i["external_id"], i["display_name"], i["attributes"]) for i in items] == [
        ("E1", "Ann", {"department": "Sales"}), ("E2", "", {}),
    ]


def test_bad_csv_files_are_422_naming_the_row(client: TestClient, tenant: TenantCtx) -> None:
    no_header = _csv(client, tenant, "email\na@b.example\n")
    assert no_header.status_code == 422
    assert no_header.json()["errors"][0]["field"] == "file"
    empty_id = _csv(client, tenant, "external_id,email\n,a@b.example\n")
    assert empty_id.status_code == 422
    assert "row 2" in empty_id.json()["detail"]
    too_many = _csv(client, tenant, "external_id\nE1,extra\n")
    assert too_many.status_code == 422
    not_utf8 = _csv(client, tenant, b"external_id\n\xff\xfe\n")
    assert not_utf8.status_code == 422
    nul = _csv(client, tenant, "external_id\nE\x001\n")
    assert nul.status_code == 422
    missing_file = client.post("/v1/identities/csv", headers=tenant.headers)
    assert missing_file.status_code == 422


def test_bad_json_rows_are_422_with_the_index(client: TestClient, tenant: TenantCtx) -> None:
    response = client.post("/v1/identities",
                           json=[{"external_id": "ok"}, {"email": "no-id@x.example"}],
                           headers=tenant.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "1.external_id"
    nan = client.post("/v1/identities", content=b'[{"external_id": "x", "attributes": {"a": NaN}}]',
                      headers={**tenant.headers, "Content-Type": "application/json"})
    assert nan.status_code == 422


def test_an_identity_shows_its_correlated_accounts(client: TestClient, tenant: TenantCtx) -> None:
    from tests.api.seed import seed_directory_and_activity

    source = create_source(client, tenant)
    seeded = seed_directory_and_activity(tenant.id, source["id"])
    body = client.get(f"/v1/identities/{seeded.identity_id}", headers=tenant.headers).json()
    assert [(a["zoom_id"], a["method"], a["account_id"]) for a in body["accounts"]] == [
        ("u-alice", "email", seeded.users["u-alice"]),
    ]
