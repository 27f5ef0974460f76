"""A database of a test's own on the stack's PostgreSQL, migrated with Alembic."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import DatabaseSettings

ROOT = Path(__file__).resolve().parents[1]


def migrate(url: str, revision: str = "head") -> None:
    """`alembic upgrade revision` on the database at `url`."""
    env = {**os.environ, "AUTOLOADER_DATABASE_URL": url}
    command = [sys.executable, "-m", "alembic", "upgrade", revision]
    subprocess.run(command, cwd=ROOT, env=env, check=True)


@asynccontextmanager
async def own_database(
    stack: DatabaseSettings, prefix: str, revision: str = "head"
) -> AsyncIterator[str]:
    """The URL of a new database beside the stack's, migrated to `revision`, dropped after."""
    url = make_url(stack.url.get_secret_value())
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    test_url = url.set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(migrate, test_url, revision)
        yield test_url
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()
