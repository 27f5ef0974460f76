"""A backfill: replay `autoloader.files` for a time window and queue those files again.

The run's window [since, until) becomes per-partition offsets with Kafka's offsets-for-times;
the replay reads up to the end offsets it found when it began, through its own consumer
group (`autoloader-backfill-<run id>`), committing as it goes, so a retried flow resumes where
it stopped. Events published by earlier backfills are skipped: they are not discoveries.

For each replayed file of the ingestion, one statement per page upserts a PENDING row under
the backfill run:
- without reprocess, only files that FAILED are queued again; ingested ones are skipped;
- with reprocess, ingested files are queued again too, as a row of their own per target
  table when one is given (the ingestion's own rows are then left as they are).
A file whose row is still in an open run is skipped, and a file already queued by this run is
not queued twice, so replaying the same messages again changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.events import FilesDiscovered
from shared.models import FileStatus, Run
from shared.topics import FILES

QUEUE_AGAIN = text(
    """
    INSERT INTO file_state (ingestion_id, run_id, path, etag, size, last_modified, status,
                            attempts, target_table, discovered_at, updated_at)
    SELECT src.ingestion_id, :run_id, src.path, src.etag, src.size, src.last_modified,
           'PENDING', 0, :target_table, now(), now()
    FROM file_state src
    WHERE src.id = ANY(CAST(:ids AS bigint[])) AND src.ingestion_id = :ingestion_id
      AND src.target_table IS NULL
    ON CONFLICT (ingestion_id, path, etag, target_table) DO UPDATE
    SET run_id = EXCLUDED.run_id, status = 'PENDING', attempts = 0, error = NULL,
        records = NULL, batch_id = NULL, claimed_by = NULL, lease_until = NULL,
        next_attempt_at = NULL, updated_at = now()
    WHERE file_state.run_id IS DISTINCT FROM EXCLUDED.run_id
      AND file_state.status = ANY(CAST(:statuses AS text[]))
      AND NOT EXISTS (SELECT 1 FROM runs open_run WHERE open_run.id = file_state.run_id
                      AND open_run.status IN ('queued', 'running'))
    RETURNING id
    """
)


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime | None
    reprocess: bool
    target_table: str | None

    @classmethod
    def of(cls, parameters: dict[str, Any]) -> Window:
        until = parameters.get("until")
        return cls(
            since=datetime.fromisoformat(parameters["since"]),
            until=datetime.fromisoformat(until) if until else None,
            reprocess=bool(parameters.get("reprocess")),
            target_table=parameters.get("target_table"),
        )

    @property
    def statuses(self) -> list[str]:
        if self.reprocess:
            return [FileStatus.SUCCESS, FileStatus.FAILED, FileStatus.SKIPPED]
        return [FileStatus.FAILED]


@dataclass
class Progress:
    messages_total: int = 0
    messages_read: int = 0
    files_matched: int = 0
    files_queued: int = 0
    seen: set[int] = field(default_factory=set, repr=False)

    def as_dict(self) -> dict[str, int]:
        return {
            "messages_total": self.messages_total,
            "messages_read": self.messages_read,
            "files_matched": self.files_matched,
            "files_queued": self.files_queued,
            "files_skipped": self.files_matched - self.files_queued,
        }


@dataclass(frozen=True)
class Replay:
    ingestion_id: uuid.UUID
    run_id: uuid.UUID
    window: Window
    sessions: async_sessionmaker[AsyncSession]
    bootstrap_servers: str
    report: Callable[[Progress], None] = lambda _: None
    consumer_group: str | None = None  # default: autoloader-backfill-<run id>

    @property
    def group_id(self) -> str:
        return self.consumer_group or f"autoloader-backfill-{self.run_id}"

    async def run(self) -> Progress:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            return await self._replay(consumer)
        finally:
            await consumer.stop()

    async def _replay(self, consumer: AIOKafkaConsumer) -> Progress:
        partitions = [
            TopicPartition(FILES.name, p) for p in sorted(await _partitions(self.bootstrap_servers))
        ]
        consumer.assign(partitions)
        starts, ends = await self._bounds(consumer, partitions)
        progress = Progress(messages_total=sum(ends[tp] - starts[tp] for tp in partitions))
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in partitions if starts[tp] < ends[tp]}
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=2000)
            ids = self._file_ids(fetched, ends, progress)
            progress.files_queued += await self._queue(ids - progress.seen)
            progress.seen |= ids
            progress.files_matched = len(progress.seen)
            await consumer.commit()
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
            await self._record(progress)
        await self._record(progress)
        return progress

    async def _bounds(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """Per partition, where to start (committed by an earlier attempt, else the first
        offset at `since`) and where to stop (`until`, else the end when the replay began)."""
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        if self.window.until is not None:
            at_until = await consumer.offsets_for_times(
                {tp: _ms(self.window.until) for tp in partitions}
            )
            ends = {tp: at_until[tp].offset if at_until[tp] else ends[tp] for tp in partitions}
        at_since = await consumer.offsets_for_times(
            {tp: _ms(self.window.since) for tp in partitions}
        )
        starts = {}
        for tp in partitions:
            committed = await consumer.committed(tp)
            first = at_since[tp].offset if at_since[tp] else ends[tp]
            starts[tp] = committed if committed is not None else first
        return starts, ends

    def _file_ids(
        self,
        fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        ends: dict[TopicPartition, int],
        progress: Progress,
    ) -> set[int]:
        ids: set[int] = set()
        for tp, messages in fetched.items():
            for message in messages:
                if message.offset >= ends[tp]:
                    break
                progress.messages_read += 1
                ids.update(self._ids_in(message))
        return ids

    def _ids_in(self, message: ConsumerRecord[bytes, bytes]) -> Iterable[int]:
        if message.key != str(self.ingestion_id).encode() or message.value is None:
            return ()
        try:
            event = FilesDiscovered.model_validate_json(message.value)
        except ValidationError:
            return ()  # the processor dead-lettered it when it was new
        if event.replayed or event.ingestion_id != self.ingestion_id:
            return ()
        return (file.file_id for file in event.files)

    async def _queue(self, ids: set[int]) -> int:
        if not ids:
            return 0
        async with self.sessions() as session, session.begin():
            queued = await session.execute(
                QUEUE_AGAIN,
                {
                    "ids": sorted(ids),
                    "run_id": self.run_id,
                    "ingestion_id": self.ingestion_id,
                    "target_table": self.window.target_table,
                    "statuses": self.window.statuses,
                },
            )
            return len(queued.all())

    async def _record(self, progress: Progress) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Run).where(Run.id == self.run_id).values(progress=progress.as_dict())
            )
        self.report(progress)


async def _partitions(bootstrap_servers: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        [topic] = await admin.describe_topics([FILES.name])
    finally:
        await admin.close()
    partitions = sorted(partition["partition"] for partition in topic.get("partitions", []))
    if not partitions:
        raise LookupError(f"topic {FILES.name} has no partitions: run `autoloader topics ensure`")
    return partitions


def _ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)
