"""A backfill: find the ingestion's files discovered in a time window, in `file_state`, and
queue them again.

The window [since, until) applies to `discovered_at` of the ingestion's own rows (those
without a target table); with no `until`, it ends when the replay begins, so files discovered
while a backfill runs are not in it. Every file the ingestion recorded is found, whether or not
its event ever reached `autoloader.files` (the processor's sweep lands files that discovery
recorded and never published).

The files are read in pages by id (keyset: each page starts after the last id of the one
before), and one statement per page upserts a PENDING row under the backfill run:
- without reprocess, only files that FAILED are queued again; ingested ones are skipped;
- with reprocess, ingested files are queued again too, as a row of their own per target
  table when one is given (the ingestion's own rows are then left as they are).
A file whose row is still in an open run is skipped, and a file already queued by this run is
not queued twice, so running the same replay again (a retried flow) changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import FileStatus, Run

# One page: the window's next files by id, their upsert under the backfill run, and what the
# page held. `already` counts files this run queued before (a retried flow), read from the
# snapshot the upsert started from, so it and `queued` never count a file twice; without a
# target table the row to queue is the file's own row, else it is found by the unique key.
QUEUE_PAGE = text(
    """
    WITH page AS (
        SELECT id FROM file_state
        WHERE ingestion_id = :ingestion_id AND target_table IS NULL
          AND discovered_at >= CAST(:since AS timestamptz)
          AND discovered_at < CAST(:until AS timestamptz)
          AND id > :after
        ORDER BY id
        LIMIT :limit
    ),
    already AS (
        SELECT count(*) AS n FROM page JOIN file_state src ON src.id = page.id
        WHERE CASE WHEN CAST(:target_table AS text) IS NULL THEN src.run_id = :run_id
              ELSE EXISTS (SELECT 1 FROM file_state own
                           WHERE own.ingestion_id = src.ingestion_id AND own.path = src.path
                             AND own.etag = src.etag
                             AND own.target_table = CAST(:target_table AS text)
                             AND own.run_id = :run_id) END
    ),
    queued AS (
        INSERT INTO file_state (ingestion_id, run_id, path, etag, size, last_modified, status,
                                attempts, target_table, discovered_at, updated_at)
        SELECT src.ingestion_id, :run_id, src.path, src.etag, src.size, src.last_modified,
               'PENDING', 0, CAST(:target_table AS text), now(), now()
        FROM file_state src JOIN page ON page.id = src.id
        ON CONFLICT (ingestion_id, path, etag, target_table) DO UPDATE
        SET run_id = EXCLUDED.run_id, status = 'PENDING', attempts = 0, error = NULL,
            records = NULL, batch_id = NULL, claimed_by = NULL, lease_until = NULL,
            next_attempt_at = NULL, updated_at = now()
        WHERE file_state.run_id IS DISTINCT FROM EXCLUDED.run_id
          AND file_state.status = ANY(CAST(:statuses AS text[]))
          AND NOT EXISTS (SELECT 1 FROM runs open_run WHERE open_run.id = file_state.run_id
                          AND open_run.status IN ('queued', 'running'))
        RETURNING id
    )
    SELECT (SELECT max(id) FROM page) AS last_id,
           (SELECT count(*) FROM page) AS matched,
           (SELECT n FROM already) + (SELECT count(*) FROM queued) AS queued
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
    pages: int = 0
    files_matched: int = 0
    files_queued: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "pages": self.pages,
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
    report: Callable[[Progress], None] = lambda _: None
    page_size: int = 1000

    async def run(self) -> Progress:
        """Queue the window's files page by page; record and report progress after each."""
        until = self.window.until or datetime.now(UTC)
        progress = Progress()
        after = 0
        while True:
            last_id, matched, queued = await self._queue_page(after, until)
            if last_id is None:
                break
            progress.pages += 1
            progress.files_matched += matched
            progress.files_queued += queued
            await self._record(progress)
            after = last_id
        await self._record(progress)
        return progress

    async def _queue_page(self, after: int, until: datetime) -> tuple[int | None, int, int]:
        async with self.sessions() as session, session.begin():
            row = (
                await session.execute(
                    QUEUE_PAGE,
                    {
                        "ingestion_id": self.ingestion_id,
                        "run_id": self.run_id,
                        "since": self.window.since,
                        "until": until,
                        "after": after,
                        "limit": self.page_size,
                        "target_table": self.window.target_table,
                        "statuses": self.window.statuses,
                    },
                )
            ).one()
        return row.last_id, int(row.matched), int(row.queued)

    async def _record(self, progress: Progress) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Run).where(Run.id == self.run_id).values(progress=progress.as_dict())
            )
        self.report(progress)
