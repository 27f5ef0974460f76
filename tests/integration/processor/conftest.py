"""A throwaway tenant, ingestion and table on the real PostgreSQL, S3 store and Spark Connect,
and a Processor wired to them as the service wires it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pyspark.sql import SparkSession
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from autoloader_processor.engine import SparkSlots
from autoloader_processor.fetching import Fetcher
from autoloader_processor.folders import FolderSizer
from autoloader_processor.pool import Processor
from autoloader_processor.settings import ProcessorSettings
from shared.db import session_factory
from shared.events import FileFailed
from shared.models import FileState, Ingestion, Run, Tenant, TenantNamespace
from shared.settings import SparkSettings
from shared.spec import IngestionSpec

BUCKET = "autoloader-landing"


@dataclass
class Landing:
    ingestion: Ingestion
    spec: IngestionSpec
    prefix: str
    table: str  # quoted, as the processor writes it

    def path(self, name: str) -> str:
        return f"s3://{BUCKET}/{self.prefix}/{name}"


def fetched_batches(outcome: str) -> float:
    """Batches fetched into this process so far: 'fetched', or 'fell_back' to Spark's read."""
    value = REGISTRY.get_sample_value("autoloader_fetched_batches_total", {"outcome": outcome})
    return value or 0.0


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
async def landing(
    sessions: async_sessionmaker[AsyncSession], spark: Any, unique: str
) -> AsyncIterator[Landing]:
    table = f"proc_{unique}"
    spec = IngestionSpec.model_validate(
        {
            "name": table,
            "source": {"type": "s3", "path": f"s3://{BUCKET}/it/{table}/"},
            "format": {"type": "json"},
            "destination": {"table": table},
        }
    )
    async with sessions() as session, session.begin():
        tenant = Tenant(name=f"it-{unique}")
        session.add(tenant)
        await session.flush()
        # As an operator grants it: the table is in the `default` database.
        session.add(TenantNamespace(tenant_id=tenant.id, namespace="spark_catalog.default"))
        ingestion = Ingestion(
            tenant_id=tenant.id,
            name=table,
            spec=spec.model_dump(mode="json", by_alias=True),
            source_type="s3",
            source_bucket=BUCKET,
            # The stack's own processor sweeps every ingestion with claimable files; it skips
            # deleted ones, which leaves these files to the processor under test.
            deleted_at=datetime.now(UTC),
        )
        session.add(ingestion)
    yield Landing(ingestion, spec, f"it/{table}", spec.destination.qualified)
    spark.sql(f"DROP TABLE IF EXISTS {spec.destination.qualified} PURGE")
    async with sessions() as session, session.begin():
        await session.execute(delete(FileState).where(FileState.ingestion_id == ingestion.id))
        await session.execute(delete(Run).where(Run.ingestion_id == ingestion.id))
        await session.execute(delete(Ingestion).where(Ingestion.id == ingestion.id))
        await session.execute(delete(Tenant).where(Tenant.id == ingestion.tenant_id))


def put_files(s3: Any, landing: Landing, names: list[str], rows: int = 3) -> dict[str, int]:
    """JSON-lines files with `rows` rows each; returns path -> size."""
    sizes = {}
    for name in names:
        body = "\n".join(json.dumps({"file": name, "row": r}) for r in range(rows)).encode()
        s3.put_object(Bucket=BUCKET, Key=f"{landing.prefix}/{name}", Body=body)
        sizes[landing.path(name)] = len(body)
    return sizes


async def record_files(
    sessions: async_sessionmaker[AsyncSession], landing: Landing, sizes: dict[str, int]
) -> list[int]:
    """PENDING file_state rows for the files, in order; their ids."""
    async with sessions() as session, session.begin():
        rows = [
            FileState(ingestion_id=landing.ingestion.id, path=path, etag=uuid.uuid4().hex, size=n)
            for path, n in sizes.items()
        ]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


async def expire_lease(sessions: async_sessionmaker[AsyncSession], ids: list[int]) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                "UPDATE file_state SET lease_until = now() - interval '1 second' "
                "WHERE id = ANY(:ids)"
            ),
            {"ids": ids},
        )


@pytest.fixture
def dead_letters() -> list[FileFailed]:
    return []


@pytest.fixture
def processor(
    sessions: async_sessionmaker[AsyncSession],
    spark_settings: SparkSettings,
    dead_letters: list[FileFailed],
) -> Iterator[Processor]:
    def build() -> SparkSession:
        session: SparkSession = SparkSession.builder.remote(spark_settings.remote).create()
        return session

    async def dead_letter(event: FileFailed) -> None:
        dead_letters.append(event)

    slots = SparkSlots(build, 1)
    settings = ProcessorSettings(worker_id="it-processor", retry_base_seconds=0)
    yield Processor(
        settings=settings,
        sessions=sessions,
        slots=slots,
        dead_letter=dead_letter,
        folders=FolderSizer(settings.s3, settings.folder_read_files_per_page),
        fetcher=Fetcher(settings.s3, settings.fetch_batch_bytes),
    )
    slots.close_all()
