"""Revision 0007 on a database holding specs stored before it: what had no effect is stored as
what the reader did, and every stored spec validates again (see the revision's docstring)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.settings import DatabaseSettings
from shared.spec import IngestionSpec
from tests.databases import migrate, own_database

pytestmark = pytest.mark.integration

# name -> (the format stored before revision 0007, the format after it)
FORMATS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "parquet-none": (
        {"type": "parquet", "schema": {"inference": "none"}, "compression": "gzip"},
        {"type": "parquet", "schema": {"inference": "auto"}, "compression": "auto"},
    ),
    "json-none": (
        {"type": "json", "schema": {"inference": "none"}, "compression": "none"},
        {"type": "json", "schema": {"inference": "auto"}, "compression": "auto"},
    ),
    "csv-auto": (
        {"type": "csv", "schema": {"inference": "auto"}, "compression": "auto"},
        {"type": "csv", "schema": {"inference": "auto"}, "compression": "auto"},
    ),
}


def spec(name: str, fmt: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"type": "s3", "path": "s3://landing/in/"},
        "format": {**fmt, "schema": {**fmt["schema"], "evolution_enabled": True}},
        "destination": {"table": name.replace("-", "_")},
    }


async def store_before(engine: AsyncEngine) -> None:
    """One ingestion of each format in FORMATS, as stored before revision 0007."""
    async with engine.begin() as connection:
        tenant = uuid.uuid4()
        await connection.execute(
            text("INSERT INTO tenants (id, name) VALUES (:id, 'old')"), {"id": tenant}
        )
        for key, (before, _) in FORMATS.items():
            await connection.execute(
                text(
                    "INSERT INTO ingestions (id, tenant_id, name, status, spec, source_type,"
                    " work_queue, version, sync_status) VALUES (:id, :tenant, :name,"
                    " 'active', CAST(:spec AS jsonb), 's3', 'default', 1, 'pending')"
                ),
                {
                    "id": uuid.uuid4(),
                    "tenant": tenant,
                    "name": key,
                    "spec": json.dumps(spec(key, before)),
                },
            )


async def test_specs_stored_before_keep_the_reading_they_had(
    database_settings: DatabaseSettings,
) -> None:
    async with own_database(database_settings, "autoloader_test", "0006") as url:
        engine = create_async_engine(url)
        try:
            await store_before(engine)
            await asyncio.to_thread(migrate, url, "head")
            async with engine.connect() as connection:
                result = await connection.execute(text("SELECT name, spec FROM ingestions"))
                stored: dict[str, dict[str, Any]] = {row.name: row.spec for row in result}
        finally:
            await engine.dispose()
    for key, (_, after) in FORMATS.items():
        assert stored[key] == spec(key, after)
        IngestionSpec.model_validate(stored[key])  # parquet with 'none' would be refused
