"""Event schemas: every message Autoloader puts on Kafka, as versioned pydantic models.

Each event carries its own id (consumers deduplicate on it), a schema version, the tenant and
the ingestion id, which is also the Kafka key, so one ingestion's events stay in order on one
partition. Events carry ids and settings only, never source credentials.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from shared.topics import FILES, INGESTION_EVENTS, RUN_EVENTS, Topic


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    topic: ClassVar[Topic] = INGESTION_EVENTS

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    schema_version: int = 1
    occurred_at: datetime = Field(default_factory=_now)
    tenant_id: uuid.UUID
    ingestion_id: uuid.UUID

    @property
    def key(self) -> bytes:
        return str(self.ingestion_id).encode()


class IngestionSnapshot(BaseModel):
    """What scheduler-sync needs to shape the Prefect deployment, credentials excluded."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: str
    source_type: str
    schedule_cron: str | None
    schedule_timezone: str | None
    work_queue: str
    version: int


class IngestionCreated(Event):
    event_type: Literal["IngestionCreated"] = "IngestionCreated"
    ingestion: IngestionSnapshot


class IngestionUpdated(Event):
    event_type: Literal["IngestionUpdated"] = "IngestionUpdated"
    ingestion: IngestionSnapshot
    changed: list[str] = Field(description="Top-level spec fields that changed.")


class IngestionDeleted(Event):
    event_type: Literal["IngestionDeleted"] = "IngestionDeleted"


class IngestionPaused(Event):
    event_type: Literal["IngestionPaused"] = "IngestionPaused"


class IngestionResumed(Event):
    event_type: Literal["IngestionResumed"] = "IngestionResumed"


class IngestionTriggered(Event):
    event_type: Literal["IngestionTriggered"] = "IngestionTriggered"
    run_id: uuid.UUID
    trigger: str
    requested_by: str | None = None


class BackfillRequested(Event):
    event_type: Literal["BackfillRequested"] = "BackfillRequested"
    run_id: uuid.UUID
    since: datetime
    until: datetime | None = None
    reprocess: bool = False
    target_table: str | None = None
    requested_by: str | None = None


class DiscoveredFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    file_id: int
    path: str
    etag: str
    size: int


class FilesDiscovered(Event):
    """A batch of new files recorded as PENDING under a run, for the processor pool."""

    topic: ClassVar[Topic] = FILES
    event_type: Literal["FilesDiscovered"] = "FilesDiscovered"
    run_id: uuid.UUID
    files: list[DiscoveredFile]
    replayed: bool = Field(
        default=False,
        description="files a backfill queued again, not newly discovered",
    )


class RunCompleted(Event):
    """A run whose files are all final: success, partial or failed, with its counts."""

    topic: ClassVar[Topic] = RUN_EVENTS
    event_type: Literal["RunCompleted"] = "RunCompleted"
    run_id: uuid.UUID
    status: str
    files_succeeded: int
    files_failed: int
    records: int
    bytes: int


class FileFailed(Event):
    """A file that failed its last attempt, sent to the DLQ with its error."""

    event_type: Literal["FileFailed"] = "FileFailed"
    run_id: uuid.UUID | None
    file_id: int
    path: str
    attempts: int
    error: str


IngestionEvent = Annotated[
    IngestionCreated
    | IngestionUpdated
    | IngestionDeleted
    | IngestionPaused
    | IngestionResumed
    | IngestionTriggered
    | BackfillRequested,
    Field(discriminator="event_type"),
]

INGESTION_EVENT_ADAPTER: TypeAdapter[IngestionEvent] = TypeAdapter(IngestionEvent)


def parse_ingestion_event(raw: bytes | str | dict[str, Any]) -> IngestionEvent:
    """Validate one message of `autoloader.ingestion-events`; raises ValidationError."""
    if isinstance(raw, dict):
        return INGESTION_EVENT_ADAPTER.validate_python(raw)
    return INGESTION_EVENT_ADAPTER.validate_json(raw)
