"""Rows of the stack's database for run tests: a tenant, an ingestion, a run and its files,
removed again after the test."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import (
    FileState,
    FileStatus,
    Ingestion,
    OutboxEvent,
    Run,
    RunStatus,
    RunTrigger,
    Tenant,
)


def local_spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"type": "local", "path": "file:///tmp/autoloader-runs-test/none"},
        "format": {"type": "json"},
        "destination": {"table": "runs_test"},
    }


async def new_ingestion(
    sessions: async_sessionmaker[AsyncSession], *, deleted: bool = True
) -> Ingestion:
    """An ingestion of a new tenant. Deleted by default, so that reconcile never gives it a
    deployment while the test runs."""
    name = f"runs-test-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        tenant = Tenant(id=uuid.uuid4(), name=name)
        session.add(tenant)
        await session.flush()
        ingestion = Ingestion(
            id=uuid.uuid4(),
            tenant_id=tenant.id,
            name=name,
            spec=local_spec(name),
            source_type="local",
            deleted_at=datetime.now(UTC) if deleted else None,
        )
        session.add(ingestion)
    return ingestion


async def new_run(
    sessions: async_sessionmaker[AsyncSession],
    ingestion: Ingestion,
    *,
    status: RunStatus = RunStatus.RUNNING,
    files_expected: int | None = None,
    **values: Any,
) -> uuid.UUID:
    run_id = uuid.uuid4()
    async with sessions() as session, session.begin():
        session.add(
            Run(
                id=run_id,
                ingestion_id=ingestion.id,
                tenant_id=ingestion.tenant_id,
                trigger=RunTrigger.MANUAL,
                status=status,
                files_expected=files_expected,
                requested_by="runs test",
                **values,
            )
        )
    return run_id


async def add_files(
    sessions: async_sessionmaker[AsyncSession],
    ingestion: Ingestion,
    run_id: uuid.UUID,
    statuses: Iterable[FileStatus],
) -> list[int]:
    """Files of the run in the given statuses; claimed ones hold a lease far in the future, so
    no processor of the stack takes them over."""
    lease = datetime.now(UTC) + timedelta(hours=1)
    files = [
        FileState(
            ingestion_id=ingestion.id,
            run_id=run_id,
            path=f"file:///tmp/autoloader-runs-test/{n}.json",
            etag=uuid.uuid4().hex,
            size=10,
            status=status,
            records=5 if status == FileStatus.SUCCESS else None,
            claimed_by="runs-test" if status == FileStatus.CLAIMED else None,
            lease_until=lease if status == FileStatus.CLAIMED else None,
        )
        for n, status in enumerate(statuses)
    ]
    async with sessions() as session, session.begin():
        session.add_all(files)
    return [file.id for file in files]


async def run_row(sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> Run:
    async with sessions() as session:
        run = await session.get(Run, run_id)
    assert run is not None
    return run


async def completions(sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> int:
    """How many RunCompleted events of the run are in the outbox."""
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxEvent.id).where(
                OutboxEvent.event_type == "RunCompleted",
                OutboxEvent.payload["run_id"].astext == str(run_id),
            )
        )
        return len(rows.all())


async def remove(sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion) -> None:
    """Take the test's rows out again (its outbox events stay: the relay may have sent them)."""
    async with sessions() as session, session.begin():
        await session.execute(delete(FileState).where(FileState.ingestion_id == ingestion.id))
        await session.execute(delete(Run).where(Run.ingestion_id == ingestion.id))
        await session.execute(
            update(Ingestion)
            .where(Ingestion.id == ingestion.id)
            .values(deleted_at=datetime.now(UTC))
        )
