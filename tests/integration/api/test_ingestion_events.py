"""Every write of the API commits its event to the outbox, and the relay puts it on Kafka."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.api.conftest import Events, NewTenant, seed_request

pytestmark = pytest.mark.integration


async def test_create_publishes_ingestion_created_without_credentials(
    client: httpx.AsyncClient, new_tenant: NewTenant, events: Events
) -> None:
    headers = await new_tenant()
    response = await client.post("/api/v1/ingestions", json=seed_request(), headers=headers)
    assert response.status_code == 201, response.text
    created = response.json()

    [message] = await events.for_key(created["id"], count=1)

    event = message["event"]
    assert message["headers"]["event_type"] == b"IngestionCreated"
    assert event["event_type"] == "IngestionCreated"
    assert event["ingestion_id"] == created["id"]
    assert event["schema_version"] == 1
    assert event["ingestion"]["schedule_cron"] == "0 * * * *"
    assert event["ingestion"]["schedule_timezone"] == "UTC"
    assert event["ingestion"]["work_queue"] == "default"
    assert b"sEcReT-never-in-events" not in message["raw"]
    assert b"AKIATESTKEY12345" not in message["raw"]
    assert b"credentials" not in message["raw"]


async def test_each_write_produces_its_event_in_order(
    client: httpx.AsyncClient, new_tenant: NewTenant, events: Events
) -> None:
    headers = await new_tenant()
    created = (await client.post("/api/v1/ingestions", json=seed_request(), headers=headers)).json()
    url = f"/api/v1/ingestions/{created['id']}"

    patched = await client.patch(
        url,
        json={"schedule": {"frequency": "daily", "time": "02:30", "timezone": "Europe/Berlin"}},
        headers=headers,
    )
    assert patched.status_code == 200, patched.text
    assert (await client.post(f"{url}/pause", headers=headers)).status_code == 200
    refused = await client.post(f"{url}/run", headers=headers)
    assert refused.status_code == 409
    assert "paused" in refused.json()["detail"]
    assert (await client.post(f"{url}/resume", headers=headers)).status_code == 200
    accepted = await client.post(f"{url}/run", headers=headers)
    assert accepted.status_code == 202
    assert accepted.json()["status"] == "queued"
    assert (await client.delete(url, headers=headers)).status_code == 204
    assert (await client.get(url, headers=headers)).status_code == 404

    messages = await events.for_key(created["id"], count=6, settle=1.0)

    kinds = [message["event"]["event_type"] for message in messages]
    assert kinds == [
        "IngestionCreated",
        "IngestionUpdated",
        "IngestionPaused",
        "IngestionResumed",
        "IngestionTriggered",
        "IngestionDeleted",
    ]
    updated = messages[1]["event"]
    assert updated["changed"] == ["schedule"]
    assert updated["ingestion"]["schedule_cron"] == "30 2 * * *"
    assert updated["ingestion"]["schedule_timezone"] == "Europe/Berlin"
    triggered = messages[4]["event"]
    assert triggered["run_id"] == accepted.json()["run_id"]
    assert triggered["trigger"] == "manual"


async def test_a_run_is_visible_with_its_file_counts(
    client: httpx.AsyncClient, new_tenant: NewTenant
) -> None:
    headers = await new_tenant()
    created = (await client.post("/api/v1/ingestions", json=seed_request(), headers=headers)).json()
    run_id = (await client.post(f"/api/v1/ingestions/{created['id']}/run", headers=headers)).json()[
        "run_id"
    ]

    run = (await client.get(f"/api/v1/runs/{run_id}", headers=headers)).json()
    runs = (await client.get(f"/api/v1/ingestions/{created['id']}/runs", headers=headers)).json()
    files = (await client.get(f"/api/v1/ingestions/{created['id']}/files", headers=headers)).json()

    assert (run["id"], run["status"], run["trigger"], run["file_counts"]) == (
        run_id,
        "queued",
        "manual",
        {},
    )
    assert [item["id"] for item in runs["items"]] == [run_id]
    assert files == {"items": [], "total": 0, "limit": 100, "offset": 0}


async def test_an_ingestion_without_schedule_can_be_run_by_hand(
    client: httpx.AsyncClient, new_tenant: NewTenant
) -> None:
    headers = await new_tenant()
    body = seed_request(schedule=None)
    created = (await client.post("/api/v1/ingestions", json=body, headers=headers)).json()
    assert created["schedule_cron"] is None

    response = await client.post(f"/api/v1/ingestions/{created['id']}/run", headers=headers)

    assert response.status_code == 202


async def test_credentials_are_masked_in_every_response(
    client: httpx.AsyncClient, new_tenant: NewTenant
) -> None:
    headers = await new_tenant()
    created = await client.post("/api/v1/ingestions", json=seed_request(), headers=headers)
    listed = await client.get("/api/v1/ingestions", headers=headers)
    fetched = await client.get(f"/api/v1/ingestions/{created.json()['id']}", headers=headers)

    for response in (created, listed, fetched):
        assert "sEcReT-never-in-events" not in response.text
        assert "AKIATESTKEY12345" not in response.text
    assert fetched.json()["spec"]["source"]["credentials"] == {
        "aws_access_key_id": "AKIA****",
        "aws_secret_access_key": "****",
        "aws_region": "us-east-1",
    }


async def test_a_repeated_idempotency_key_returns_the_same_run_and_one_event(
    client: httpx.AsyncClient, new_tenant: NewTenant, events: Events
) -> None:
    headers = await new_tenant()
    created = (await client.post("/api/v1/ingestions", json=seed_request(), headers=headers)).json()
    url = f"/api/v1/ingestions/{created['id']}/run"
    keyed = {**headers, "Idempotency-Key": "upstream-42"}

    first = await client.post(url, headers=keyed)
    second = await client.post(url, headers=keyed)
    other = await client.post(url, headers={**headers, "Idempotency-Key": "upstream-43"})

    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["run_id"] == second.json()["run_id"] != other.json()["run_id"]
    messages = await events.for_key(created["id"], count=3, settle=1.0)
    triggered = [m["event"] for m in messages if m["event"]["event_type"] == "IngestionTriggered"]
    assert [event["run_id"] for event in triggered] == [
        first.json()["run_id"],
        other.json()["run_id"],
    ]
