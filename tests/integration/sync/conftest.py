"""Fixtures for scheduler-sync tests against the stack's Prefect server: a database of their
own (so that nothing the stack runs is touched by a watchdog under test) and a deployment that
no worker serves (so that the flow runs they create stay scheduled)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from autoloader_sync.prefect_gateway import FLOW_NAME
from shared.db import session_factory
from shared.settings import DatabaseSettings, PrefectSettings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
async def own_database(database_settings: DatabaseSettings) -> AsyncIterator[DatabaseSettings]:
    """A new database, migrated with `alembic upgrade head`, dropped afterwards."""
    url = make_url(database_settings.url.get_secret_value())
    name = f"autoloader_sync_test_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    test_url = url.set(database=name).render_as_string(hide_password=False)
    env = {**os.environ, "AUTOLOADER_DATABASE_URL": test_url}
    migrate = [sys.executable, "-m", "alembic", "upgrade", "head"]
    await asyncio.to_thread(subprocess.run, migrate, cwd=ROOT, env=env, check=True)
    yield DatabaseSettings(url=SecretStr(test_url))
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    await admin.dispose()


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
