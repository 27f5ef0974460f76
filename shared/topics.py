"""Every Kafka topic Autoloader uses, with the partitions and retention it is created with.

Retention matters: `autoloader.ingestion-events` is the log scheduler-sync replays to rebuild
Prefect, so it is kept forever; `autoloader.files` is a work queue for the processors
(backfills read `file_state`, not this topic), and keeps 90 days for inspection. Change a
topic here and `autoloader topics ensure` applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DAY_MS = 24 * 60 * 60 * 1000
FOREVER = -1


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    retention_ms: int
    description: str
    config: dict[str, str] = field(default_factory=dict)

    def configs(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), **self.config}


INGESTION_EVENTS = Topic(
    "autoloader.ingestion-events",
    6,
    FOREVER,
    "Ingestion lifecycle events from the API outbox, keyed by ingestion id.",
)
COMMANDS = Topic(
    "autoloader.commands",
    6,
    30 * DAY_MS,
    "Commands from upstream systems: trigger an ingestion, request a backfill.",
)
S3_EVENTS = Topic(
    "autoloader.s3-events",
    6,
    7 * DAY_MS,
    "S3 event notifications in AWS's record format.",
)
FILES = Topic(
    "autoloader.files",
    12,
    90 * DAY_MS,
    "Batches of discovered files, keyed by ingestion id.",
)
RUN_EVENTS = Topic(
    "autoloader.run-events",
    6,
    30 * DAY_MS,
    "Run outcomes (RunCompleted), keyed by ingestion id.",
)
DLQ = Topic(
    "autoloader.dlq",
    3,
    30 * DAY_MS,
    "Messages no consumer could apply, with the reason in their headers.",
)

ALL_TOPICS: tuple[Topic, ...] = (INGESTION_EVENTS, COMMANDS, S3_EVENTS, FILES, RUN_EVENTS, DLQ)

# Only where the S3 store is SeaweedFS (the local stack): its filer publishes protobuf
# events here, and discovery translates them into S3 notifications on S3_EVENTS.
SEAWEEDFS_FILER = Topic(
    "autoloader.seaweedfs-filer",
    3,
    1 * DAY_MS,
    "SeaweedFS filer events (protobuf), translated to S3 notifications by discovery.",
)
