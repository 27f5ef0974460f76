"""Tenant B can neither read, change, run nor list tenant A's ingestions."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.api.conftest import NewTenant, seed_request

pytestmark = pytest.mark.integration


async def test_another_tenants_ingestion_is_invisible(
    client: httpx.AsyncClient, new_tenant: NewTenant
) -> None:
    tenant_a, tenant_b = await new_tenant(), await new_tenant()
    created = await client.post("/api/v1/ingestions", json=seed_request(), headers=tenant_a)
    url = f"/api/v1/ingestions/{created.json()['id']}"
    run_id = (await client.post(f"{url}/run", headers=tenant_a)).json()["run_id"]

    attempts = {
        "get": await client.get(url, headers=tenant_b),
        "put": await client.put(url, json=seed_request(), headers=tenant_b),
        "patch": await client.patch(url, json={"name": "stolen"}, headers=tenant_b),
        "pause": await client.post(f"{url}/pause", headers=tenant_b),
        "resume": await client.post(f"{url}/resume", headers=tenant_b),
        "run": await client.post(f"{url}/run", headers=tenant_b),
        "runs": await client.get(f"{url}/runs", headers=tenant_b),
        "files": await client.get(f"{url}/files", headers=tenant_b),
        "run by id": await client.get(f"/api/v1/runs/{run_id}", headers=tenant_b),
        "delete": await client.delete(url, headers=tenant_b),
    }

    assert {name: response.status_code for name, response in attempts.items()} == {
        name: 404 for name in attempts
    }
    listed = (await client.get("/api/v1/ingestions", headers=tenant_b)).json()
    assert listed["total"] == 0 and listed["items"] == []
    still_there = await client.get(url, headers=tenant_a)
    assert still_there.status_code == 200
    assert still_there.json()["name"] == created.json()["name"]
    assert still_there.json()["status"] == "active"


async def test_requests_without_a_valid_key_are_refused(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/ingestions")
    wrong = await client.get("/api/v1/ingestions", headers={"Authorization": "Bearer al_nope"})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert "Bearer" in missing.json()["detail"]


async def test_list_filters_by_status_and_name_and_paginates(
    client: httpx.AsyncClient, new_tenant: NewTenant
) -> None:
    headers = await new_tenant()
    ids = []
    for name in ("orders-eu", "orders-us", "clicks"):
        response = await client.post(
            "/api/v1/ingestions", json=seed_request(name=name), headers=headers
        )
        ids.append(response.json()["id"])
    await client.post(f"/api/v1/ingestions/{ids[1]}/pause", headers=headers)

    by_name = (await client.get("/api/v1/ingestions?name=orders", headers=headers)).json()
    paused = (await client.get("/api/v1/ingestions?status=paused", headers=headers)).json()
    page = (await client.get("/api/v1/ingestions?limit=2&offset=2", headers=headers)).json()

    assert sorted(item["name"] for item in by_name["items"]) == ["orders-eu", "orders-us"]
    assert [item["id"] for item in paused["items"]] == [ids[1]]
    assert (page["total"], [item["id"] for item in page["items"]]) == (3, [ids[2]])


async def test_metrics_count_requests_by_route_and_status(client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/ingestions")  # 401: no key
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/v1/ingestions",status="401"' in metrics
    assert "autoloader_outbox_oldest_unsent_seconds" in metrics
