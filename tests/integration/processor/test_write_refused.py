"""The processor checks the destination against the tenant's namespaces again right before it
writes: after an operator revokes a grant, the ingestion's files fail with the reason and
nothing is written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_processor.pool import Processor
from shared.models import FileState, TenantNamespace
from tests.integration.processor.conftest import Landing, put_files, record_files
from tests.integration.processor.test_exactly_once import claim

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_a_revoked_namespace_fails_the_files_and_writes_nothing(
    sessions: async_sessionmaker[AsyncSession],
    landing: Landing,
    processor: Processor,
    s3: Any,
    spark: Any,
) -> None:
    sizes = put_files(s3, landing, ["a.json", "b.json"])
    ids = await record_files(sessions, landing, sizes)
    async with sessions() as session, session.begin():
        await session.execute(
            delete(TenantNamespace).where(TenantNamespace.tenant_id == landing.ingestion.tenant_id)
        )

    taken = await claim(sessions, landing, "refused")
    assert sorted(taken.ids) == sorted(ids)
    await processor.process(landing.ingestion, landing.spec, taken)

    async with sessions() as session:
        rows = (await session.execute(select(FileState).where(FileState.id.in_(ids)))).scalars()
        seen = [(row.status, row.records, row.error or "") for row in rows]
    assert [(status, records) for status, records, _ in seen] == [("PENDING", None)] * 2, seen
    assert all("write refused: spark_catalog.default is not" in e for _, _, e in seen), seen
    assert not spark.catalog.tableExists(landing.table.replace("`", ""))
