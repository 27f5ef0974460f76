"""Bad requests get a 422 that names the field at fault, and change nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import NewTenant, seed_request

pytestmark = pytest.mark.integration


def with_(path: str, value: Any) -> dict[str, Any]:
    """The seeds' request with the value at a dotted path replaced (None removes it)."""
    body = seed_request()
    *parents, leaf = path.split(".")
    node = body
    for part in parents:
        node = node[part]
    if value is None:
        node.pop(leaf)
    else:
        node[leaf] = value
    return body


BAD_REQUESTS = [
    ("bad cron", with_("schedule", {"frequency": "custom", "cron": "61 * * * *"}), "schedule.cron"),
    (
        "cron with 6 fields",
        with_("schedule", {"frequency": "custom", "cron": "0 0 * * * *"}),
        "schedule.cron",
    ),
    ("custom without cron", with_("schedule", {"frequency": "custom"}), "schedule"),
    ("unknown timezone", with_("schedule.timezone", "Mars/Olympus_Mons"), "schedule.timezone"),
    ("unknown frequency", with_("schedule.frequency", "fortnightly"), "schedule.frequency"),
    ("daily at 25:00", with_("schedule", {"frequency": "daily", "time": "25:00"}), "schedule.time"),
    (
        "weekly on a bad day",
        with_("schedule", {"frequency": "weekly", "day_of_week": "funday"}),
        "schedule.day_of_week",
    ),
    (
        "every 0 minutes",
        with_("schedule", {"frequency": "every_n_minutes", "interval_minutes": 0}),
        "schedule.interval_minutes",
    ),
    (
        "every 90 minutes",
        with_("schedule", {"frequency": "every_n_minutes", "interval_minutes": 90}),
        "schedule",
    ),
    ("http path for s3", with_("source.path", "http://bucket/data/"), "source"),
    ("upper-case bucket", with_("source.path", "s3://Bad_Bucket/data/"), "source"),
    ("relative local path", with_("source", {"type": "local", "path": "data/in"}), "source"),
    ("unknown source type", with_("source.type", "ftp"), "source.type"),
    ("unknown format", with_("format.type", "xml"), "format.type"),
    ("two-character delimiter", with_("format.delimiter", ";;"), "format.delimiter"),
    ("table with a dot", with_("destination.table", "orders.v2"), "destination.table"),
    ("table with SQL", with_("destination.table", "t; DROP TABLE x"), "destination.table"),
    ("database with a quote", with_("destination.database", "de`fault"), "destination.database"),
    ("catalog starting with a digit", with_("destination.catalog", "1cat"), "destination.catalog"),
    ("unknown write mode", with_("destination.write_mode", "merge"), "destination.write_mode"),
    ("missing name", with_("name", None), "name"),
    ("missing destination table", with_("destination.table", None), "destination.table"),
    ("unknown field", {**seed_request(), "colour": "blue"}, "colour"),
    (
        "unknown overwrite policy",
        {**seed_request(), "overwrite_policy": "merge"},
        "overwrite_policy",
    ),
    (
        "credentials without secret",
        with_("source.credentials", {"aws_access_key_id": "AKIA"}),
        "source.credentials.aws_secret_access_key",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "field"), BAD_REQUESTS, ids=[case for case, _, _ in BAD_REQUESTS]
)
async def test_bad_request_is_a_422_naming_the_field(
    client: httpx.AsyncClient, new_tenant: NewTenant, case: str, body: Any, field: str
) -> None:
    headers = await new_tenant()

    response = await client.post("/api/v1/ingestions", json=body, headers=headers)

    assert response.status_code == 422, f"{case}: {response.status_code} {response.text}"
    fields = [
        ".".join(str(part) for part in error["loc"][1:]) for error in response.json()["detail"]
    ]
    assert any(name == field or name.startswith(f"{field}.") for name in fields), (
        f"{case}: {field} not among {fields}"
    )
    listed = (await client.get("/api/v1/ingestions", headers=headers)).json()
    assert listed["total"] == 0


async def test_a_bad_patch_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, new_tenant: NewTenant
) -> None:
    headers = await new_tenant()
    created = (await client.post("/api/v1/ingestions", json=seed_request(), headers=headers)).json()
    url = f"/api/v1/ingestions/{created['id']}"

    response = await client.patch(
        url, json={"schedule": {"timezone": "Nowhere/City"}}, headers=headers
    )

    assert response.status_code == 422
    assert ["body", "schedule", "timezone"] in [error["loc"] for error in response.json()["detail"]]
    assert (await client.get(url, headers=headers)).json()["schedule_timezone"] == "UTC"


@pytest.mark.parametrize("listing", ["", "/{id}/runs", "/{id}/files"])
@pytest.mark.parametrize(("name", "value"), [("offset", 2**63), ("offset", -1), ("limit", 501)])
async def test_a_page_out_of_range_is_a_422(
    client: httpx.AsyncClient, new_tenant: NewTenant, listing: str, name: str, value: int
) -> None:
    """Never a 500: an offset past PostgreSQL's bigint once overflowed the query."""
    headers = await new_tenant()
    created = (await client.post("/api/v1/ingestions", json=seed_request(), headers=headers)).json()
    url = "/api/v1/ingestions" + listing.format(id=created["id"])

    response = await client.get(url, params={name: value}, headers=headers)
    largest = await client.get(url, params={"offset": 2**63 - 1}, headers=headers)

    assert response.status_code == 422, response.text
    assert ["query", name] in [error["loc"] for error in response.json()["detail"]]
    assert largest.status_code == 200 and largest.json()["items"] == [], largest.text
