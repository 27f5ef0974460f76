"""Fixtures for discovery tests: sessions on the stack's database and a throwaway ingestion."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import session_factory
from shared.models import Ingestion
from tests.integration.runs.rows import new_ingestion, remove


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
async def ingestion(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Ingestion]:
    ingestion = await new_ingestion(sessions)
    yield ingestion
    await remove(sessions, ingestion)
