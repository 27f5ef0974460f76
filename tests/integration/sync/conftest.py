"""Fixtures for scheduler-sync tests against the stack's Prefect server: a database of their
own (so that nothing the stack runs is touched by a watchdog under test) and a deployment that
no worker serves (so that the flow runs they create stay scheduled)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from autoloader_sync.prefect_gateway import FLOW_NAME
from shared.db import session_factory
from shared.settings import DatabaseSettings, PrefectSettings
from tests import databases


@pytest.fixture(scope="module")
async def own_database(database_settings: DatabaseSettings) -> AsyncIterator[DatabaseSettings]:
    """A new database, migrated with `alembic upgrade head`, dropped afterwards."""
    async with databases.own_database(database_settings, "autoloader_sync_test") as url:
        yield DatabaseSettings(url=SecretStr(url))


@pytest.fixture
async def own_sessions(
    own_database: DatabaseSettings,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(own_database.url.get_secret_value())
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def unserved_deployment(
    prefect_settings: PrefectSettings, unique: str
) -> AsyncIterator[uuid.UUID]:
    """A deployment of the ingestion flow in no work pool: its flow runs are never started."""
    async with PrefectClient(prefect_settings.api_url) as client:
        flow_id = await client.create_flow_from_name(FLOW_NAME)
        deployment_id = await client.create_deployment(
            flow_id=flow_id, name=f"watchdog-test-{unique}", tags=["watchdog-test"]
        )
        yield deployment_id
        flow_runs = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
        for flow_run in flow_runs:
            await client.delete_flow_run(flow_run.id)
        await client.delete_deployment(deployment_id)
