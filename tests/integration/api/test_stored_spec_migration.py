"""Revision 0007 on a database holding specs stored before it: what had no effect is stored as
what the reader did, and every stored spec validates again (see the revision's docstring)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import DatabaseSettings
from shared.spec import IngestionSpec

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
FORMATS: dict[
    str, tuple[dict[str, Any], dict[str, Any]]
] = {  # name -> (the format stored before 0007, the format after it)
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


def alembic(url: str, target: str) -> None:
    env = {**os.environ, "AUTOLOADER_DATABASE_URL": url}
    command = [sys.executable, "-m", "alembic", "upgrade", target]
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)


async def test_specs_stored_before_keep_the_reading_they_had(
    database_settings: DatabaseSettings,
) -> None:
    url = make_url(database_settings.url.get_secret_value())
    name = f"autoloader_test_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    test_url = url.set(database=name).render_as_string(hide_password=False)
    engine = create_async_engine(test_url)
    try:
        await asyncio.to_thread(alembic, test_url, "0006")
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
        await asyncio.to_thread(alembic, test_url, "head")
        async with engine.connect() as connection:
            result = await connection.execute(text("SELECT name, spec FROM ingestions"))
            stored: dict[str, dict[str, Any]] = {row.name: row.spec for row in result}
    finally:
        await engine.dispose()
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()
    for key, (_, after) in FORMATS.items():
        assert stored[key] == spec(key, after)
        IngestionSpec.model_validate(stored[key])  # parquet with 'none' would be refused
