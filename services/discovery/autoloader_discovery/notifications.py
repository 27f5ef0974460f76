"""S3 event notifications to PENDING files, with no listing.

Each ObjectCreated record goes to every active ingestion whose source takes notifications and
whose bucket, prefix and file pattern match the object. The consumer hands over a batch of
notifications at a time, in one transaction: per ingestion, the batch's new objects join the
ingestion's open `s3_event` run when one began within the join window, or open a new run, and
are recorded PENDING; the caller commits, then publishes one event per ingestion to
`autoloader.files`. An object already recorded (a repeated notification, or one the
safety-net listing found first) is not recorded again, so it is ingested once; within a batch,
an object's versions keep the order they were notified in (see `route`).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from autoloader_discovery.discovery import insert_new_files
from autoloader_discovery.listing import ListedObject, matches
from shared.events import FilesDiscovered
from shared.models import Ingestion, IngestionStatus, Run, RunStatus, RunTrigger, SourceClaim
from shared.s3_events import S3EventRecord
from shared.spec import IngestionSpec


@dataclass(frozen=True, eq=False)
class Subscriber:
    """An active ingestion fed by notifications, with its tenant's claims on the bucket."""

    ingestion_id: uuid.UUID
    tenant_id: uuid.UUID
    spec: IngestionSpec
    claimed: tuple[str, ...]  # prefixes of the bucket its tenant claims

    def wants(self, record: S3EventRecord) -> bool:
        source = self.spec.source
        if record.bucket != source.bucket or not record.key.startswith(source.prefix):
            return False
        if not any(record.key.startswith(prefix) for prefix in self.claimed):
            return False  # another tenant's part of the bucket
        relative = record.key[len(source.prefix) :]
        return not relative.endswith("/") and matches(relative, source.file_pattern)


async def subscribers(session: AsyncSession, buckets: Sequence[str]) -> list[Subscriber]:
    rows = await session.scalars(
        select(Ingestion).where(
            Ingestion.source_bucket.in_(sorted(set(buckets))),
            Ingestion.source_type == "s3",
            Ingestion.status == IngestionStatus.ACTIVE,
            Ingestion.deleted_at.is_(None),
        )
    )
    ingestions = list(rows)
    claims: dict[tuple[str, uuid.UUID], list[str]] = defaultdict(list)
    for bucket, tenant_id, prefix in await session.execute(
        select(SourceClaim.bucket, SourceClaim.tenant_id, SourceClaim.prefix).where(
            SourceClaim.bucket.in_({row.source_bucket for row in ingestions})
        )
    ):
        claims[bucket, tenant_id].append(prefix)
    found = [
        Subscriber(
            row.id,
            row.tenant_id,
            IngestionSpec.model_validate(row.spec),
            tuple(claims[row.source_bucket or "", row.tenant_id]),
        )
        for row in ingestions
    ]
    return [subscriber for subscriber in found if subscriber.spec.uses_notifications]


def route(
    records: Sequence[S3EventRecord], candidates: Sequence[Subscriber]
) -> dict[Subscriber, list[ListedObject]]:
    """The created objects each subscriber takes, in the order notified; removals and
    unmatched objects drop out, and so do repeats. Under the `ignore` overwrite policy an
    object's first version wins, as if the notifications had come one at a time (the later
    ones are overwrites); under `reingest` every version is kept."""
    routed: dict[Subscriber, dict[str, ListedObject]] = defaultdict(dict)
    for record in records:
        if not record.created or not record.etag:
            continue
        listed = ListedObject(record.path, record.etag, record.s3.object.size, record.event_time)
        for subscriber in candidates:
            if subscriber.wants(record):
                reingest = subscriber.spec.overwrite_policy == "reingest"
                version = f"{listed.path}\0{listed.etag}" if reingest else listed.path
                routed[subscriber].setdefault(version, listed)
    return {subscriber: list(objects.values()) for subscriber, objects in routed.items()}


async def record_notified(
    session: AsyncSession,
    subscriber: Subscriber,
    objects: Sequence[ListedObject],
    join_window: timedelta,
) -> FilesDiscovered | None:
    """In the caller's transaction, which the caller commits: record the objects under an
    open or new `s3_event` run; the event to publish, or None when every object was known
    already (then the run opened for nothing is rolled back, and the rest of the transaction
    is kept)."""
    savepoint = await session.begin_nested()
    run_id = await _open_run(session, subscriber, join_window)
    new = await insert_new_files(session, subscriber.ingestion_id, run_id, subscriber.spec, objects)
    if not new:
        await savepoint.rollback()
        return None
    await session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(files_expected=func.coalesce(Run.files_expected, 0) + len(new))
    )
    await savepoint.commit()
    return FilesDiscovered(
        tenant_id=subscriber.tenant_id,
        ingestion_id=subscriber.ingestion_id,
        run_id=run_id,
        files=new,
    )


async def _open_run(
    session: AsyncSession, subscriber: Subscriber, join_window: timedelta
) -> uuid.UUID:
    """The open `s3_event` run of the window, locked so it cannot close while files join it;
    else a new one."""
    joined = await session.scalar(
        select(Run.id)
        .where(
            Run.ingestion_id == subscriber.ingestion_id,
            Run.trigger == RunTrigger.S3_EVENT,
            Run.status == RunStatus.RUNNING,
            Run.created_at > datetime.now(UTC) - join_window,
        )
        .order_by(Run.created_at.desc())
        .limit(1)
        .with_for_update()
    )
    if joined is not None:
        return joined
    run = Run(
        id=uuid.uuid4(),
        ingestion_id=subscriber.ingestion_id,
        tenant_id=subscriber.tenant_id,
        trigger=RunTrigger.S3_EVENT,
        status=RunStatus.RUNNING,
        requested_by="s3 event notification",
        started_at=datetime.now(UTC),
        files_expected=0,
    )
    session.add(run)
    await session.flush()
    return run.id
