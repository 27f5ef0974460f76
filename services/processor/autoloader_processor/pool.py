"""The processor's work: claim an ingestion's files batch by batch and land each batch.

Each batch goes claim → read → commit → record:
- claim: `claims.claim_batch`, kept alive by a heartbeat that renews the short lease;
- read: one Spark pass (`reading.BatchReader`); a file that cannot be read fails alone;
- commit: stage and publish through write-audit-publish (`iceberg.IcebergTables`), after
  checking the claim is still held; a batch already published is never written again;
- record: mark files with the rows read from them, back off failures, close finished runs.

A failure is the batch's own only when Spark Connect, the catalog and the S3 store all answer;
otherwise the claim is released without spending the files' attempts, and tried again later.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Histogram
from pyspark.sql import SparkSession
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_processor import claims, json_lines
from autoloader_processor.claims import Claim, ClaimedFile
from autoloader_processor.engine import (
    SlotSession,
    SparkSlots,
    buckets_of,
    catalog_failed,
    first_line,
    outage,
    spark_unreachable,
)
from autoloader_processor.fetching import Fetcher
from autoloader_processor.folders import FolderSizer
from autoloader_processor.iceberg import IcebergTables
from autoloader_processor.reading import LISTING_TASKS, BatchReader
from autoloader_processor.settings import ProcessorSettings
from shared import errors
from shared.crypto import CredentialCipher
from shared.events import FileFailed
from shared.models import Ingestion, Tenant
from shared.runs import complete_run_if_done
from shared.spec import IngestionSpec, S3Credentials, quoted
from shared.tenancy import Forbidden, check_table, destination_of

log = logging.getLogger(__name__)

FILES_INGESTED = Counter("autoloader_files_ingested_total", "Files landed in Iceberg", ["tenant"])
RECORDS_INGESTED = Counter(
    "autoloader_records_ingested_total", "Records landed in Iceberg", ["tenant"]
)
BYTES_INGESTED = Counter("autoloader_bytes_ingested_total", "Bytes of files landed", ["tenant"])
FILE_FAILURES = Counter(
    "autoloader_file_failures_total",
    "Failed file attempts, by reason: unreadable (the file), batch (its batch's write), "
    "refused (the tenant may not write the table)",
    ["tenant", "reason"],
)
OUTAGES = Counter("autoloader_batch_outages_total", "Batches released for an outage")
CLAIMS_LOST = Counter("autoloader_claims_lost_total", "Batches not committed: the claim was lost")
BATCHES_OVERDUE = Counter(
    "autoloader_batches_overdue_total", "Batches whose claim was given up after the batch timeout"
)
CLAIM_SECONDS = Histogram("autoloader_claim_seconds", "Time to claim a batch")
BATCH_SECONDS = Histogram(
    "autoloader_batch_seconds",
    "Time from a batch's claim to its files' outcome recorded",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)

DeadLetter = Callable[[FileFailed], Awaitable[None]]


class ClaimLost(RuntimeError):
    """Another processor holds the batch now: this one must not commit it."""


class Outage(RuntimeError):
    """Part of the infrastructure did not answer: not the files' fault."""


@dataclass
class Outcome:
    records: dict[str, int] = field(default_factory=dict)  # landed, by path
    snapshot: int | None = None  # the table's snapshot that holds the landed records
    failed: dict[str, str] = field(default_factory=dict)  # outside any commit: the reason
    batch_failed: str | None = None  # the whole batch failed; its commit may exist
    unwritten: list[str] = field(default_factory=list)  # not in the batch's landed commit
    outage: str | None = None
    lost: bool = False
    refused: bool = False  # `failed` holds the tenancy check's refusal, not read failures

    def failure_reason(self) -> str:
        """The reason class of this outcome's failed files, a label of FILE_FAILURES."""
        if self.batch_failed is not None:
            return "batch"
        return "refused" if self.refused else "unreadable"


@dataclass
class Hold:
    """The claim as its heartbeat sees it: lost, or held until `valid_until` (monotonic)."""

    lost: threading.Event = field(default_factory=threading.Event)
    valid_until: float = 0.0


@dataclass
class Processor:
    settings: ProcessorSettings
    sessions: async_sessionmaker[AsyncSession]
    slots: SparkSlots
    dead_letter: DeadLetter
    s3: Any = None  # a boto3 client for outage probes
    cipher: CredentialCipher | None = None  # decrypts the ingestions' source credentials
    folders: FolderSizer | None = None  # picks the folders a batch lists instead of its files
    fetcher: Fetcher | None = None  # fetches small batches instead of Spark opening each file
    ready_tables: set[str] = field(default_factory=set)

    async def drain(self, ingestion_id: uuid.UUID, workers: int = 1) -> int:
        """Process the ingestion's claimable files, up to `workers` batches at once, until none
        are left or the infrastructure is out; return how many files were handled."""
        async with self.sessions() as session:
            ingestion = await session.get(Ingestion, ingestion_id)
        if ingestion is None or ingestion.deleted_at is not None:
            return 0
        spec = self._with_credentials(ingestion, IngestionSpec.model_validate(ingestion.spec))
        return await self.land(ingestion, spec, workers)

    async def land(self, ingestion: Ingestion, spec: IngestionSpec, workers: int = 1) -> int:
        """`workers` loops of claim and process over the ingestion's claimable files.

        One ingestion's file events share a Kafka partition, so one consumer gets them all, one
        at a time: with one loop, a backlog would be landed one batch after another while the
        pool's other Spark sessions sat idle. Each loop claims its own batches (`SKIP LOCKED`);
        all of them finish before an error of one is raised."""
        results = await asyncio.gather(
            *(self._drain(ingestion, spec) for _ in range(workers)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return sum(r for r in results if isinstance(r, int))

    async def _drain(self, ingestion: Ingestion, spec: IngestionSpec) -> int:
        """One loop of `land`: a free Spark session, then a batch claimed for it, until none is
        left or an outage. Claiming only with a session in hand leaves no batch claimed and
        idle here while another processor could land it."""
        done = 0
        while True:
            async with self.slots.session() as slot:
                if (claim := await self._claim(ingestion, spec)) is None:
                    return done
                with BATCH_SECONDS.time():
                    async with self._holding(claim) as hold:
                        healthy = await self._process(ingestion, spec, claim, slot, hold)
            if not healthy:
                return done  # an outage: the sweep comes back after the backoff
            done += len(claim.files)

    def _with_credentials(self, ingestion: Ingestion, spec: IngestionSpec) -> IngestionSpec:
        """The spec with the source's own credentials, with which Spark reads its files: they
        are stored encrypted beside the spec, never in it."""
        if ingestion.credentials is None:
            return spec
        if self.cipher is None:
            raise RuntimeError("the ingestion has credentials and no key to decrypt them")
        credentials = S3Credentials.model_validate(self.cipher.decrypt(ingestion.credentials))
        source = spec.source.model_copy(update={"credentials": credentials})
        return spec.model_copy(update={"source": source})

    async def _claim(self, ingestion: Ingestion, spec: IngestionSpec) -> Claim | None:
        with CLAIM_SECONDS.time():
            async with self.sessions() as session:
                return await claims.claim_batch(
                    session,
                    ingestion.id,
                    self.settings.worker_id,
                    spec.execution.max_files_per_batch,
                    spec.execution.max_bytes_per_batch,
                    self.settings.lease_seconds,
                )

    async def process(self, ingestion: Ingestion, spec: IngestionSpec, claim: Claim) -> bool:
        """Land a claim taken elsewhere; False after an outage. Its heartbeat starts first:
        waiting for a free Spark session must not lose the claim."""
        async with self._holding(claim) as hold, self.slots.session() as slot:
            return await self._process(ingestion, spec, claim, slot, hold)

    async def _process(
        self, ingestion: Ingestion, spec: IngestionSpec, claim: Claim, slot: SlotSession, hold: Hold
    ) -> bool:
        """Land the claim's files, one commit per target table; False after an outage."""
        by_table: dict[str | None, list[ClaimedFile]] = defaultdict(list)
        for file in claim.files:
            by_table[file.target_table].append(file)
        healthy = True
        for target, files in by_table.items():
            table = quoted(target) if target else spec.destination.qualified
            if refused := await self._refused(ingestion, target or destination_of(spec)):
                failed = dict.fromkeys((f.path for f in files), refused)
                outcome = Outcome(failed=failed, refused=True)
            else:
                outcome = await self._land(slot.spark, spec, claim, table, files, hold)
            if outcome.outage:
                slot.broken, healthy = True, False
            await self._record(ingestion, claim, table, files, outcome)
        return healthy

    async def _refused(self, ingestion: Ingestion, qualified: str) -> str | None:
        """Checked again before each write: the table lies in the tenant's namespaces."""
        async with self.sessions() as session:
            tenant = await session.get_one(Tenant, ingestion.tenant_id)
            try:
                await check_table(session, tenant, qualified, "destination")
            except Forbidden as error:
                log.warning("ingestion %s: write refused: %s", ingestion.id, error)
                return f"write refused: {error.reason}"
        return None

    @asynccontextmanager
    async def _holding(self, claim: Claim) -> AsyncIterator[Hold]:
        """Renew the claim's lease every third of it while the batch is worked on, for at most
        `batch_timeout_seconds`: a batch that hangs then lets its lease run out, another
        processor takes the files, and this one can no longer commit them."""
        lease = self.settings.lease_seconds
        hold = Hold(valid_until=time.monotonic() + lease)
        deadline = time.monotonic() + self.settings.batch_timeout_seconds

        async def beat() -> None:
            while not hold.lost.is_set():
                await asyncio.sleep(lease / 3)
                if time.monotonic() > deadline:
                    BATCHES_OVERDUE.inc()
                    log.error(
                        "batch %s still running after %.0fs: its claim is given up",
                        claim.files[0].batch_id,
                        self.settings.batch_timeout_seconds,
                    )
                    hold.lost.set()
                    return
                started = time.monotonic()
                try:
                    async with self.sessions() as session:
                        held = await claims.renew(session, claim, lease)
                except Exception as error:  # the database is out: the lease runs down
                    log.warning("lease renewal failed: %s", first_line(error))
                    continue
                if held:
                    hold.valid_until = started + lease
                else:
                    hold.lost.set()

        task = asyncio.create_task(beat())
        try:
            yield hold
        finally:
            task.cancel()

    async def _land(
        self,
        spark: SparkSession,
        spec: IngestionSpec,
        claim: Claim,
        table: str,
        files: Sequence[ClaimedFile],
        hold: Hold,
    ) -> Outcome:
        loop = asyncio.get_running_loop()

        def check_held() -> None:
            """Right before publishing: the lease has time left and the database agrees."""
            margin = self.settings.commit_margin_seconds
            if hold.lost.is_set() or time.monotonic() + margin > hold.valid_until:
                raise ClaimLost("the lease ran out before the commit")
            future = asyncio.run_coroutine_threadsafe(self._still_held(claim, margin), loop)
            try:
                held = future.result(timeout=margin)
            except Exception as error:
                raise ClaimLost(f"the claim could not be checked: {first_line(error)}") from error
            if not held:
                raise ClaimLost("another processor holds the batch")

        try:
            return await asyncio.to_thread(
                self._write, spark, spec, table, files, claim, check_held
            )
        except ClaimLost as error:
            log.warning("claim lost, batch not committed: %s", error)
            CLAIMS_LOST.inc()
            return Outcome(lost=True)
        except Exception as error:
            return await asyncio.to_thread(self._after_failure, spark, table, files, error)

    async def _still_held(self, claim: Claim, margin: float) -> bool:
        async with self.sessions() as session:
            return await claims.still_held(session, claim, margin)

    def _write(
        self,
        spark: SparkSession,
        spec: IngestionSpec,
        table: str,
        files: Sequence[ClaimedFile],
        claim: Claim,
        check_held: Callable[[], None],
    ) -> Outcome:
        """In a worker thread: read the files and publish them, unless the batch is in. A batch
        id this claim made is in no table: only a batch tried before needs the look."""
        tables = IcebergTables(spark, self.ready_tables)
        batch_id = files[0].batch_id
        if not claim.fresh and (landed := tables.published(table, batch_id)) is not None:
            log.info("batch %s is already in %s as snapshot %s", batch_id, table, landed)
            return self._replayed(tables, table, landed, files)
        sizes = {f.path: f.size for f in files}
        # Per batch, not when the session is built: building one must not need the server.
        spark.conf.set(LISTING_TASKS, str(self.settings.listing_tasks))
        scheme_key = self.cipher.derived_key("filesystem-scheme") if self.cipher else None
        folders = self._folders(spec, sizes)
        reader = BatchReader(
            spark,
            spec,
            sizes,
            self.settings.tenancy.warehouse_bucket,
            scheme_key,
            folders,
            self.fetcher,
        )
        try:
            read = reader.read()
            if read.failed and (down := self._outage(spark, table, files)):
                raise Outage(down)
            if read.frame is not None:
                tables.ensure_table(table, read.frame)
                staged = tables.stage(spec, table, read.frame, batch_id, claim.token)
                check_held()
                snapshot = tables.publish(table, staged)
                if snapshot is None:
                    log.warning("batch %s was already published by another holder", batch_id)
                    landed = tables.published(table, batch_id)
                    assert landed is not None, "published twice, yet not in the history"
                    return self._replayed(tables, table, landed, files)
                log.info("batch %s published in %s as snapshot %s", batch_id, table, snapshot)
                return Outcome(records=read.records, failed=read.failed, snapshot=snapshot)
            return Outcome(records=read.records, failed=read.failed)
        finally:
            reader.release()

    def _folders(self, spec: IngestionSpec, sizes: dict[str, int]) -> list[str]:
        """The folders Spark lists whole: none for a batch fetched here, which lists nothing."""
        if self.folders is None or not json_lines.readable(spec.format):
            return []
        if self.fetcher is not None and self.fetcher.takes(spec.format, sizes):
            return []
        return self.folders.folders(list(sizes), spec.source.credentials)

    @staticmethod
    def _replayed(
        tables: IcebergTables, table: str, snapshot: int, files: Sequence[ClaimedFile]
    ) -> Outcome:
        """The batch's commit is in the table: its rows per file are the landed counts; files
        it does not hold are given back for a fresh attempt."""
        counts = tables.records_in_commit(table, snapshot, [f.path for f in files])
        landed = {path: count for path, count in counts.items() if count > 0}
        unwritten = [p for p in counts if p not in landed]
        return Outcome(records=landed, unwritten=unwritten, snapshot=snapshot)

    def _outage(self, spark: SparkSession, table: str, files: Sequence[ClaimedFile]) -> str | None:
        return outage(spark, table, buckets_of([f.path for f in files]), self.s3)

    def _after_failure(
        self, spark: SparkSession, table: str, files: Sequence[ClaimedFile], error: Exception
    ) -> Outcome:
        """In a worker thread: whose failure was it, and did the batch land anyway?"""
        down = (
            str(error)
            if isinstance(error, Outage)
            else spark_unreachable(error)
            or catalog_failed(error)
            or self._outage(spark, table, files)
        )
        if down:
            OUTAGES.inc()
            log.warning("batch released: %s", down)
            return Outcome(outage=down)
        try:
            landed = IcebergTables(spark, self.ready_tables).published(table, files[0].batch_id)
            if landed is not None:
                return self._replayed(IcebergTables(spark, self.ready_tables), table, landed, files)
        except Exception as check:
            return Outcome(outage=f"the commit could not be checked: {first_line(check)}")
        # One text, one ref for every file of the batch; the full error goes to the log.
        spark_class = errors.spark_error_class(error)
        reason = errors.public_error(
            error,
            log,
            where="batch failed",
            detail=f"Spark error {spark_class}" if spark_class else None,
            about=f"batch {files[0].batch_id} into {table}",
            extra={"batch_id": files[0].batch_id},
        )
        return Outcome(batch_failed=reason)

    async def _record(
        self,
        ingestion: Ingestion,
        claim: Claim,
        table: str,
        files: Sequence[ClaimedFile],
        outcome: Outcome,
    ) -> None:
        if outcome.lost:
            return
        by_path = {file.path: file for file in files}
        dead: list[FileFailed] = []
        async with self.sessions() as session, session.begin():
            if outcome.outage:
                backoff = self.settings.outage_backoff_seconds
                await claims.release(session, claim, files, backoff, keep_batch=True)
                return
            await claims.mark_succeeded(
                session, claim, {by_path[p].id: n for p, n in outcome.records.items()}
            )
            unwritten = [by_path[p] for p in outcome.unwritten]
            await claims.release(session, claim, unwritten, 0, keep_batch=False)
            failures = dict(outcome.failed)
            if outcome.batch_failed:
                failures.update(dict.fromkeys(by_path, outcome.batch_failed))
            for path, error in failures.items():
                dead += await self._fail(session, ingestion, claim, by_path[path], error, outcome)
            for run_id in sorted({f.run_id for f in files if f.run_id is not None}):
                await complete_run_if_done(session, run_id)
            if outcome.snapshot is not None and outcome.records:
                await claims.record_commit(session, ingestion.id, table, outcome.snapshot)
        tenant = str(ingestion.tenant_id)
        FILES_INGESTED.labels(tenant).inc(len(outcome.records))
        RECORDS_INGESTED.labels(tenant).inc(sum(outcome.records.values()))
        BYTES_INGESTED.labels(tenant).inc(sum(by_path[p].size for p in outcome.records))
        for event in dead:
            await self.dead_letter(event)

    async def _fail(
        self,
        session: AsyncSession,
        ingestion: Ingestion,
        claim: Claim,
        file: ClaimedFile,
        error: str,
        outcome: Outcome,
    ) -> list[FileFailed]:
        FILE_FAILURES.labels(str(ingestion.tenant_id), outcome.failure_reason()).inc()
        error = errors.public_file_error(
            error,
            log,
            about=f"file {file.path}",
            extra={"ingestion_id": ingestion.id, "run_id": file.run_id, "batch_id": file.batch_id},
        )
        final = await claims.mark_failed(
            session,
            claim,
            file,
            error,
            self.settings.max_attempts,
            self.settings.retry_base_seconds,
            keep_batch=outcome.batch_failed is not None,
        )
        return [self._failed_event(ingestion, file, error)] if final else []

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
            ingestion_ids = await claims.ingestions_with_claimable_files(session)
        done = 0
        for ingestion_id in ingestion_ids:
            done += await self.drain(ingestion_id)
        return done
