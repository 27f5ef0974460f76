"""Tenant A cannot reach into tenant B's data plane through the API: B's tables (by create,
PATCH, PUT or backfill), B's bucket, the warehouse bucket, or the service's own filesystem.
Each refusal is a 403 naming the field, and nothing changes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_api.app import create_app
from autoloader_api.auth import create_key
from autoloader_api.settings import ApiSettings
from shared.models import OutboxEvent, Run, SourceClaim
from shared.settings import TenancySettings
from shared.tenancy import own_database
from shared.uow import UnitOfWork
from tests.integration.api.conftest import seed_request

pytestmark = pytest.mark.integration


@dataclass
class Tenant:
    name: str
    headers: dict[str, str]

    @property
    def database(self) -> str:
        return own_database(self.name)


@pytest.fixture
def bare_tenant(sessions: async_sessionmaker[AsyncSession]) -> Any:
    """A tenant with an API key and no grants: only its own namespace."""

    async def create() -> Tenant:
        name = f"iso-{uuid.uuid4().hex[:8]}"
        async with UnitOfWork(sessions) as uow:
            key = await create_key(uow, name)
        return Tenant(name, {"Authorization": f"Bearer {key}"})

    return create


def body(tenant: Tenant, bucket: str, **destination: str) -> dict[str, Any]:
    request = seed_request(
        destination={"database": tenant.database, "table": "orders", **destination}
    )
    request["source"]["path"] = f"s3://{bucket}/data/"
    return request


def new_bucket() -> str:
    return f"iso-{uuid.uuid4().hex[:10]}"


async def outbox_rows(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)


def assert_forbidden(response: httpx.Response, field: str) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["field"] == field, response.text


async def test_a_tenant_writes_to_its_own_namespace_and_not_to_another_tenants(
    client: httpx.AsyncClient, bare_tenant: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    a, b = await bare_tenant(), await bare_tenant()
    own = await client.post("/api/v1/ingestions", json=body(a, new_bucket()), headers=a.headers)
    assert own.status_code == 201, own.text
    before = await outbox_rows(sessions)

    into_b = body(a, new_bucket(), database=b.database)
    assert_forbidden(
        await client.post("/api/v1/ingestions", json=into_b, headers=a.headers), "destination"
    )
    default = body(a, new_bucket(), database="default")
    assert_forbidden(
        await client.post("/api/v1/ingestions", json=default, headers=a.headers), "destination"
    )
    listed = await client.get("/api/v1/ingestions", headers=a.headers)
    assert [i["id"] for i in listed.json()["items"]] == [own.json()["id"]]
    assert await outbox_rows(sessions) == before


async def test_patch_put_and_backfill_into_another_tenants_table_are_refused_and_change_nothing(
    client: httpx.AsyncClient, bare_tenant: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    a, b = await bare_tenant(), await bare_tenant()
    created = await client.post("/api/v1/ingestions", json=body(a, new_bucket()), headers=a.headers)
    assert created.status_code == 201, created.text
    url = f"/api/v1/ingestions/{created.json()['id']}"
    before = await outbox_rows(sessions)

    patched = await client.patch(
        url, json={"destination": {"database": b.database}}, headers=a.headers
    )
    assert_forbidden(patched, "destination")
    replaced = {**body(a, new_bucket(), database=b.database), "name": created.json()["name"]}
    assert_forbidden(await client.put(url, json=replaced, headers=a.headers), "destination")
    backfill = {
        "since": "2026-11-01T00:00:00Z",
        "reprocess": True,
        "target_table": f"spark_catalog.{b.database}.orders",
    }
    assert_forbidden(
        await client.post(f"{url}/backfill", json=backfill, headers=a.headers), "target_table"
    )

    after = (await client.get(url, headers=a.headers)).json()
    assert after["spec"]["destination"]["database"] == a.database
    assert after["spec"]["source"]["path"] == created.json()["spec"]["source"]["path"]
    async with sessions() as session:
        runs = await session.scalar(
            select(func.count()).select_from(Run).where(Run.ingestion_id == created.json()["id"])
        )
    assert runs == 0
    assert await outbox_rows(sessions) == before
    # Into its own namespace, a reprocessing backfill is accepted.
    backfill["target_table"] = f"{a.database}.orders_rebuilt"
    accepted = await client.post(f"{url}/backfill", json=backfill, headers=a.headers)
    assert accepted.status_code == 202, accepted.text


async def test_the_first_tenant_on_a_bucket_claims_it_and_another_needs_a_grant(
    client: httpx.AsyncClient,
    bare_tenant: Any,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: ApiSettings,
) -> None:
    a, b = await bare_tenant(), await bare_tenant()
    bucket = new_bucket()
    first = await client.post("/api/v1/ingestions", json=body(b, bucket), headers=b.headers)
    assert first.status_code == 201, first.text
    refused = await client.post("/api/v1/ingestions", json=body(a, bucket), headers=a.headers)
    assert_forbidden(refused, "source.path")
    assert "another tenant" in refused.json()["detail"]

    granted = await asyncio.to_thread(
        operator, api_settings, "grant", "--tenant", a.name, "--source", f"s3://{bucket}/data/a/"
    )
    assert f"source s3://{bucket}/data/a/ (operator)" in granted
    under = body(a, bucket)
    under["source"]["path"] = f"s3://{bucket}/data/a/"
    assert (
        await client.post("/api/v1/ingestions", json=under, headers=a.headers)
    ).status_code == 201
    beside = body(a, bucket)
    beside["source"]["path"] = f"s3://{bucket}/data/b/"
    assert_forbidden(
        await client.post("/api/v1/ingestions", json=beside, headers=a.headers), "source.path"
    )
    async with sessions() as session:
        claims = (
            await session.execute(select(SourceClaim).where(SourceClaim.bucket == bucket))
        ).scalars()
        assert {(c.prefix, c.granted_by) for c in claims} == {
            ("", "first-use"),
            ("data/a/", "operator"),
        }


async def test_two_tenants_racing_for_one_unclaimed_bucket_get_one_claim(
    client: httpx.AsyncClient, bare_tenant: Any
) -> None:
    a, b = await bare_tenant(), await bare_tenant()
    bucket = new_bucket()
    answers = await asyncio.gather(
        client.post("/api/v1/ingestions", json=body(a, bucket), headers=a.headers),
        client.post("/api/v1/ingestions", json=body(b, bucket), headers=b.headers),
    )
    assert sorted(r.status_code for r in answers) == [201, 403], [r.text for r in answers]


async def test_the_warehouse_bucket_is_no_source(
    client: httpx.AsyncClient, bare_tenant: Any
) -> None:
    a = await bare_tenant()
    assert_forbidden(
        await client.post("/api/v1/ingestions", json=body(a, "warehouse"), headers=a.headers),
        "source.path",
    )


@pytest.mark.parametrize(
    ("tenancy", "path", "field"),
    [
        (TenancySettings(local_sources_enabled=False), "file:///tmp/in/", "source.type"),
        (
            TenancySettings(local_sources_enabled=True, local_source_roots=[]),
            "file:///tmp/in/",
            "source.path",
        ),
        (
            TenancySettings(local_sources_enabled=True, local_source_roots=["/srv/landing"]),
            "file:///srv/landing/../../etc/",
            "source.path",
        ),
        (
            TenancySettings(local_sources_enabled=True, local_source_roots=["/srv/landing"]),
            "file:///srv/landing-other/",
            "source.path",
        ),
    ],
    ids=["turned off", "no allowed root", "dot-dot escape", "sibling of the root"],
)
async def test_local_sources_need_the_operator_switch_and_an_allowed_root(
    api_settings: ApiSettings, bare_tenant: Any, tenancy: TenancySettings, path: str, field: str
) -> None:
    a = await bare_tenant()
    request = body(a, new_bucket())
    request["source"] = {"type": "local", "path": path, "file_pattern": "*.json"}
    async with local_client(api_settings, tenancy) as client:
        assert_forbidden(
            await client.post("/api/v1/ingestions", json=request, headers=a.headers), field
        )
        request["source"]["path"] = "file:///srv/landing/orders/"
        allowed = await client.post("/api/v1/ingestions", json=request, headers=a.headers)
        expected = 201 if "/srv/landing" in tenancy.local_source_roots else 403
        assert allowed.status_code == expected, allowed.text


@asynccontextmanager
async def local_client(
    settings: ApiSettings, tenancy: TenancySettings
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with other tenancy settings, without its relay."""
    relay = settings.relay.model_copy(update={"enabled": False})
    app = create_app(settings.model_copy(update={"tenancy": tenancy, "relay": relay}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


def operator(settings: ApiSettings, *args: str) -> str:
    """`autoloader tenants ...` against the tests' database, as an operator runs it."""
    env = {**os.environ, "AUTOLOADER_DATABASE_URL": settings.database.url.get_secret_value()}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "autoloader"), "tenants", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
