"""Discovery against the database: open the run, record new files set-based, read them back.

Recording a page of listed keys (`insert_new_files`, `record_new_files`) is one statement: it
inserts the objects not seen before, as PENDING under the run, and returns them, whatever the
page size and however many files the ingestion already has. Nothing is read per known file:
each listed key is looked up in the unique index of file_state.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Result, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.crypto import CredentialCipher
from shared.events import DiscoveredFile
from shared.models import FileState, FileStatus, Ingestion, Run, RunStatus, RunTrigger
from shared.runs import UNFINISHED, close_interrupted_run, complete_run_if_done
from shared.spec import IngestionSpec

if TYPE_CHECKING:
    from autoloader_discovery.listing import ListedObject

# The lookup of each listed key is a LATERAL subquery with LIMIT 1 on purpose: PostgreSQL
# always runs it per key, as a probe of uq_file_state_object (ingestion_id, path, ...). Written
# as `NOT EXISTS`, it could be planned as a hashed subplan that reads every known file of the
# ingestion, or the whole table with a sequential scan, once per page (PostgreSQL 15 did so
# for the custom plans of the first executions of the statement on each connection): a
# page's cost then grows with the files already known, and a run's with the square of its pages.
# Found: a row for the key in the ingestion's own table (target_table NULL), of any ETag when
# overwrites are ignored, of the same ETag when they are re-ingested. ON CONFLICT still settles
# a race with a concurrent insert of the same object (a notification, another run).
INSERT_NEW_FILES = text(
    """
    INSERT INTO file_state (ingestion_id, run_id, path, etag, size, last_modified, status,
                            attempts, discovered_at, updated_at)
    SELECT :ingestion_id, :run_id, listed.path, listed.etag, listed.size, listed.last_modified,
           'PENDING', 0, now(), now()
    FROM unnest(CAST(:paths AS text[]), CAST(:etags AS text[]), CAST(:sizes AS bigint[]),
                CAST(:modified AS timestamptz[])) AS listed(path, etag, size, last_modified)
    LEFT JOIN LATERAL (
        SELECT true AS found FROM file_state seen
        WHERE seen.ingestion_id = :ingestion_id AND seen.path = listed.path
          AND seen.target_table IS NULL
          AND (NOT :reingest_overwrites OR seen.etag = listed.etag)
        LIMIT 1
    ) AS seen ON true
    WHERE seen.found IS NULL
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
    result = await _insert(session, ingestion_id, run_id, spec, page)
    return [
        DiscoveredFile(file_id=row.id, path=row.path, etag=row.etag, size=row.size)
        for row in result
    ]


async def record_new_files(
    session: AsyncSession, context: RunContext, page: Sequence[ListedObject]
) -> int:
    """Record the page's unseen objects under the run and commit; return how many there were.
    (The flow publishes them later, from file_state: see pending_files.)"""
    result = await _insert(session, context.ingestion_id, context.run_id, context.spec, page)
    new = len(result.all())
    await session.commit()
    return new


async def _insert(
    session: AsyncSession,
    ingestion_id: uuid.UUID,
    run_id: uuid.UUID,
    spec: IngestionSpec,
    page: Sequence[ListedObject],
) -> Result[Any]:
    return await session.execute(
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
