"""Discovery against the database: open the run, record new files set-based, read them back.

`record_new_files` is one statement per page of keys: it inserts the objects it has not seen,
as PENDING under the run, and returns them, whatever the page size.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from autoloader_discovery.listing import ListedObject
from shared.crypto import CredentialCipher
from shared.events import DiscoveredFile
from shared.models import FileState, FileStatus, Ingestion, Run, RunStatus, RunTrigger
from shared.runs import UNFINISHED, close_interrupted_run, complete_run_if_done
from shared.spec import IngestionSpec

INSERT_NEW_FILES = text(
    """
    INSERT INTO file_state (ingestion_id, run_id, path, etag, size, last_modified, status,
                            attempts, discovered_at, updated_at)
    SELECT :ingestion_id, :run_id, listed.path, listed.etag, listed.size, listed.last_modified,
           'PENDING', 0, now(), now()
    FROM unnest(CAST(:paths AS text[]), CAST(:etags AS text[]), CAST(:sizes AS bigint[]),
                CAST(:modified AS timestamptz[])) AS listed(path, etag, size, last_modified)
    WHERE :reingest_overwrites OR NOT EXISTS (
        SELECT 1 FROM file_state seen
        WHERE seen.ingestion_id = :ingestion_id AND seen.path = listed.path
          AND seen.target_table IS NULL
    )
    ON CONFLICT (ingestion_id, path, etag, target_table) DO NOTHING
    RETURNING id, path, etag, size
    """
)


@dataclass(frozen=True)
class RunContext:
    """What the flow's tasks share. It holds no secret: Prefect records task results, so the
    source's credentials are decrypted where they are used (see source_credentials)."""

    run_id: uuid.UUID
    ingestion_id: uuid.UUID
    tenant_id: uuid.UUID
    spec: IngestionSpec
    trigger: str = RunTrigger.SCHEDULED
    parameters: dict[str, Any] | None = None  # a backfill's window


class IngestionGone(LookupError):
    pass


class RunFinished(LookupError):
    pass


async def start_run(
    session: AsyncSession,
    ingestion_id: uuid.UUID,
    run_id: uuid.UUID | None,
    flow_run_id: uuid.UUID | None,
) -> RunContext:
    """Mark the run running (creating it for a scheduled run) and load what discovery needs."""
    ingestion = await session.get(Ingestion, ingestion_id)
    if ingestion is None or ingestion.deleted_at is not None:
        raise IngestionGone(f"ingestion {ingestion_id} no longer exists")
    if run_id is None:
        run = Run(
            id=uuid.uuid4(),
            ingestion_id=ingestion.id,
            tenant_id=ingestion.tenant_id,
            trigger=RunTrigger.SCHEDULED,
            requested_by="prefect schedule",
        )
        session.add(run)
        await session.flush()
        run_id = run.id
    now = datetime.now(UTC)
    started = (
        await session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status.in_(UNFINISHED))
            .values(
                status=RunStatus.RUNNING,
                started_at=func.coalesce(Run.started_at, now),
                heartbeat_at=now,
                prefect_flow_run_id=flow_run_id,
            )
            .returning(Run.trigger, Run.parameters)
        )
    ).first()
    await session.commit()
    if started is None:  # a late flow run of a run that was closed meanwhile
        raise RunFinished(f"run {run_id} is already finished")
    spec = IngestionSpec.model_validate(ingestion.spec)
    return RunContext(
        run_id, ingestion.id, ingestion.tenant_id, spec, started.trigger, started.parameters
    )


async def source_credentials(
    session: AsyncSession, ingestion_id: uuid.UUID, cipher: CredentialCipher
) -> dict[str, Any] | None:
    """The ingestion's own source credentials, decrypted, or None. Call it where they are
    used and never return them from a task: a task's return value is a Prefect result."""
    stored = await session.scalar(select(Ingestion.credentials).where(Ingestion.id == ingestion_id))
    return cipher.decrypt(stored) if stored else None


async def insert_new_files(
    session: AsyncSession,
    ingestion_id: uuid.UUID,
    run_id: uuid.UUID,
    spec: IngestionSpec,
    page: Sequence[ListedObject],
) -> list[DiscoveredFile]:
    """In the caller's transaction: record the page's unseen objects as PENDING under the run,
    in one statement; return them."""
    result = await session.execute(
        INSERT_NEW_FILES,
        {
            "ingestion_id": ingestion_id,
            "run_id": run_id,
            "paths": [item.path for item in page],
            "etags": [item.etag for item in page],
            "sizes": [item.size for item in page],
            "modified": [item.last_modified for item in page],
            "reingest_overwrites": spec.overwrite_policy == "reingest",
        },
    )
    return [
        DiscoveredFile(file_id=row.id, path=row.path, etag=row.etag, size=row.size)
        for row in result
    ]


async def record_new_files(
    session: AsyncSession, context: RunContext, page: Sequence[ListedObject]
) -> int:
    new = await insert_new_files(session, context.ingestion_id, context.run_id, context.spec, page)
    await session.commit()
    return len(new)


async def pending_files(session: AsyncSession, run_id: uuid.UUID) -> list[DiscoveredFile]:
    rows = await session.execute(
        select(FileState.id, FileState.path, FileState.etag, FileState.size)
        .where(FileState.run_id == run_id, FileState.status == FileStatus.PENDING)
        .order_by(FileState.id)
    )
    return [
        DiscoveredFile(file_id=row.id, path=row.path, etag=row.etag, size=row.size) for row in rows
    ]


async def finish_discovery(session: AsyncSession, run_id: uuid.UUID) -> int:
    """Record how many files the run has, and close it if they are all final already (a run
    that found nothing ends here, a success with zero files). Return the count."""
    expected = await session.scalar(
        select(func.count()).select_from(FileState).where(FileState.run_id == run_id)
    )
    await session.execute(update(Run).where(Run.id == run_id).values(files_expected=expected))
    await complete_run_if_done(session, run_id)
    await session.commit()
    return int(expected or 0)


async def beat(session: AsyncSession, run_id: uuid.UUID) -> None:
    """Show that discovery of the run is alive: the watchdog of scheduler-sync treats a run
    whose flow run is RUNNING with an old heartbeat as crashed."""
    await session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.in_(UNFINISHED))
        .values(heartbeat_at=datetime.now(UTC))
    )
    await session.commit()


async def fail_run(session: AsyncSession, run_id: uuid.UUID, reason: str) -> RunStatus | None:
    """The last attempt of the run's discovery failed for ``reason``: see close_interrupted_run."""
    return await close_interrupted_run(session, run_id, reason)
