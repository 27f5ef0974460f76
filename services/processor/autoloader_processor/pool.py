"""The processor's work: claim an ingestion's files batch by batch and land each batch.

One Spark job and one Iceberg commit per claimed batch. A file that cannot be read fails alone
and is retried with exponential backoff; after its last attempt it is FAILED and dead-lettered.
After every batch, the runs its files belong to are closed if they are complete.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_processor.claims import (
    ClaimedFile,
    claim_batch,
    ingestions_with_claimable_files,
    mark_failed,
    mark_succeeded,
)
from autoloader_processor.iceberg import BatchOutcome, IcebergWriter
from autoloader_processor.settings import ProcessorSettings
from shared.events import FileFailed
from shared.faults import halt
from shared.models import Ingestion
from shared.runs import complete_run_if_done
from shared.spec import IngestionSpec, quoted

log = logging.getLogger(__name__)

FILES_INGESTED = Counter("autoloader_files_ingested_total", "Files landed in Iceberg")
RECORDS_INGESTED = Counter("autoloader_records_ingested_total", "Records landed in Iceberg")
FILE_FAILURES = Counter("autoloader_file_failures_total", "Failed file attempts")
CLAIM_SECONDS = Histogram("autoloader_claim_seconds", "Time to claim a batch")

DeadLetter = Callable[[FileFailed], Awaitable[None]]


@dataclass
class Processor:
    settings: ProcessorSettings
    sessions: async_sessionmaker[AsyncSession]
    writer: IcebergWriter
    dead_letter: DeadLetter

    async def drain(self, ingestion_id: uuid.UUID) -> int:
        """Process the ingestion's claimable files until none are left; return how many."""
        async with self.sessions() as session:
            ingestion = await session.get(Ingestion, ingestion_id)
        if ingestion is None or ingestion.deleted_at is not None:
            return 0
        spec = IngestionSpec.model_validate(ingestion.spec)
        done = 0
        while files := await self._claim(ingestion, spec):
            await self.process(ingestion, spec, files)
            done += len(files)
        return done

    async def _claim(self, ingestion: Ingestion, spec: IngestionSpec) -> list[ClaimedFile]:
        with CLAIM_SECONDS.time():
            async with self.sessions() as session:
                return await claim_batch(
                    session,
                    ingestion.id,
                    self.settings.worker_id,
                    spec.execution.max_files_per_batch,
                    spec.execution.max_bytes_per_batch,
                    self.settings.lease_seconds,
                )

    async def process(
        self, ingestion: Ingestion, spec: IngestionSpec, files: Sequence[ClaimedFile]
    ) -> None:
        # One commit per batch and table: a backfill may send files to another table.
        batches: dict[tuple[str, str | None], list[ClaimedFile]] = defaultdict(list)
        for file in files:
            batches[(file.batch_id, file.target_table)].append(file)
        for (batch_id, target), batch in batches.items():
            paths = [file.path for file in batch]
            table = quoted(target) if target else spec.destination.qualified
            try:
                outcome = await asyncio.to_thread(self.writer.write, spec, paths, batch_id, table)
            except Exception as error:
                reason = f"batch {batch_id} failed: {type(error).__name__}: {error}"
                log.warning(
                    reason[:500], extra={"ingestion_id": ingestion.id, "batch_id": batch_id}
                )
                outcome = BatchOutcome(failed=dict.fromkeys(paths, reason))
            if self.settings.crash_point == "after-commit":
                halt("after-commit")
            await self._record(ingestion, batch, outcome)

    async def _record(
        self, ingestion: Ingestion, batch: Sequence[ClaimedFile], outcome: BatchOutcome
    ) -> None:
        dead: list[FileFailed] = []
        async with self.sessions() as session, session.begin():
            await mark_succeeded(
                session, {f.id: outcome.records[f.path] for f in batch if f.path in outcome.records}
            )
            for file in batch:
                error = outcome.failed.get(file.path)
                if error is None:
                    continue
                FILE_FAILURES.inc()
                final = await mark_failed(
                    session,
                    file,
                    error,
                    self.settings.max_attempts,
                    self.settings.retry_base_seconds,
                )
                if final:
                    dead.append(self._failed_event(ingestion, file, error))
            for run_id in {file.run_id for file in batch if file.run_id is not None}:
                await complete_run_if_done(session, run_id)
        FILES_INGESTED.inc(len(outcome.records))
        RECORDS_INGESTED.inc(sum(outcome.records.values()))
        for event in dead:
            await self.dead_letter(event)

    @staticmethod
    def _failed_event(ingestion: Ingestion, file: ClaimedFile, error: str) -> FileFailed:
        return FileFailed(
            tenant_id=ingestion.tenant_id,
            ingestion_id=ingestion.id,
            run_id=file.run_id,
            file_id=file.id,
            path=file.path,
            attempts=file.attempts,
            error=error,
        )

    async def sweep(self) -> int:
        """Drain every ingestion with claimable files: retries that came due, expired leases,
        files whose event was lost."""
        async with self.sessions() as session:
            ingestion_ids = await ingestions_with_claimable_files(session)
        done = 0
        for ingestion_id in ingestion_ids:
            done += await self.drain(ingestion_id)
        return done
