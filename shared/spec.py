"""The ingestion spec: the request body users send, validated, and what it implies
(the cron of a schedule preset, the bucket of a source, the Prefect work queue).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
S3_PATH = re.compile(
    r"^s3a?://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?P<prefix>/[^\x00]*)?$"
)
HH_MM = re.compile(r"^(?P<hour>[01]\d|2[0-3]):(?P<minute>[0-5]\d)$")
WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
WORK_QUEUES = ("default", "high-memory", "priority")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class S3Credentials(StrictModel):
    aws_access_key_id: str = Field(min_length=1, max_length=256)
    aws_secret_access_key: SecretStr = Field(min_length=1)
    aws_session_token: SecretStr | None = None
    aws_region: str | None = Field(default=None, max_length=64)

    def revealed(self) -> dict[str, str | None]:
        token = self.aws_session_token
        return {
            "aws_access_key_id": self.aws_access_key_id,
            "aws_secret_access_key": self.aws_secret_access_key.get_secret_value(),
            "aws_session_token": token.get_secret_value() if token else None,
            "aws_region": self.aws_region,
        }


DEFAULT_SAFETY_NET_MINUTES = 60


class NotificationSpec(StrictModel):
    """Event mode: S3 event notifications on `autoloader.s3-events` bring new objects in
    seconds, and a listing every `safety_net_interval_minutes` catches lost notifications.

    The interval is stored as given: unset (null) means the ingestion's schedule, or else
    every DEFAULT_SAFETY_NET_MINUTES. Storing the default itself would make a stored spec
    with a schedule contradict itself the next time it is read.
    """

    enabled: bool = True
    safety_net_interval_minutes: int | None = Field(
        default=None,
        ge=1,
        le=1440,
        description=f"minutes between safety-net listings; default {DEFAULT_SAFETY_NET_MINUTES}"
        " unless the ingestion has a schedule, which is then the safety net",
    )

    @property
    def safety_net_minutes(self) -> int:
        return self.safety_net_interval_minutes or DEFAULT_SAFETY_NET_MINUTES


class SourceSpec(StrictModel):
    type: Literal["s3", "local"]
    path: str = Field(min_length=1, max_length=1024)
    file_pattern: str = Field(default="*", min_length=1, max_length=256)
    credentials: S3Credentials | None = None
    notifications: NotificationSpec | None = None

    @model_validator(mode="after")
    def _path_matches_type(self) -> SourceSpec:
        if self.type == "s3" and not S3_PATH.match(self.path):
            raise ValueError(
                "path must look like s3://bucket/prefix/ (lower-case bucket of 3-63 characters)"
            )
        if self.type == "local" and not self.path.startswith("file:///"):
            raise ValueError("a local path must be an absolute file:/// URL")
        if self.type == "local" and self.credentials is not None:
            raise ValueError("a local source takes no credentials")
        if self.type == "local" and self.notifications is not None:
            raise ValueError("notifications are for s3 sources")
        return self

    @property
    def prefix(self) -> str:
        """The key prefix below the bucket ('' for the whole bucket)."""
        match = S3_PATH.match(self.path)
        return (match["prefix"] or "/").lstrip("/") if match else ""

    @property
    def bucket(self) -> str | None:
        match = S3_PATH.match(self.path)
        return match["bucket"] if match else None


class SchemaSpec(StrictModel):
    inference: Literal["auto", "none"] = Field(
        default="auto",
        description="'auto' types each column from the values (JSON numbers, booleans, objects "
        "and arrays; CSV numbers, dates and booleans); 'none' keeps every column a string, as "
        "the file spells it (a JSON object or array as its JSON text), for json and csv",
    )
    evolution_enabled: bool = True
    rescued_data_column: str = Field(default="_rescued_data", pattern=IDENTIFIER.pattern)


class FormatSpec(StrictModel):
    type: Literal["json", "csv", "parquet"]
    multiline: bool = False
    header: bool = True
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    compression: Literal["auto", "gzip", "none"] = Field(
        default="auto",
        description="Spark decompresses by the name's extension (.gz, .bz2, .deflate, .zst, "
        ".lz4, .snappy): 'auto' reads every file so; 'gzip' fails a file not named .gz and "
        "'none' a file named as compressed, instead of reading its bytes as the wrong thing",
    )
    schema_: SchemaSpec = Field(default_factory=SchemaSpec, alias="schema")

    @property
    def typed(self) -> bool:
        """Columns typed from their values, not each a string as the file spells it."""
        return self.schema_.inference == "auto"

    @model_validator(mode="after")
    def _inference_fits_type(self) -> FormatSpec:
        if self.type == "parquet" and self.schema_.inference == "none":
            raise ValueError(
                "parquet files carry their own column types: schema.inference 'none' is for "
                "json and csv"
            )
        return self


class DestinationSpec(StrictModel):
    catalog: str = Field(default="spark_catalog", pattern=IDENTIFIER.pattern)
    database: str = Field(default="default", pattern=IDENTIFIER.pattern)
    table: str = Field(pattern=IDENTIFIER.pattern)
    write_mode: Literal["append"] = "append"

    @property
    def qualified(self) -> str:
        """The table name quoted for Spark SQL; each part is a validated identifier."""
        return ".".join(f"`{part}`" for part in (self.catalog, self.database, self.table))


@functools.cache
def _iana_zones() -> frozenset[str]:
    """The zone names, listed from the tz database once per process (the listing walks its
    directory: about 10 ms, too slow for every validation inside the event loop)."""
    return frozenset(available_timezones())


class ScheduleSpec(StrictModel):
    frequency: Literal["hourly", "daily", "weekly", "every_n_minutes", "custom"]
    time: str | None = Field(default=None, description="HH:MM, for daily and weekly")
    day_of_week: str | None = Field(default=None, description="for weekly; default sunday")
    interval_minutes: int | None = Field(default=None, ge=1, le=1440)
    cron: str | None = Field(default=None, max_length=120)
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        if value not in _iana_zones():
            raise ValueError(f"unknown IANA timezone {value!r}, e.g. 'UTC' or 'Europe/Berlin'")
        try:
            ZoneInfo(value)
        except ZoneInfoNotFoundError as error:
            raise ValueError(f"unknown IANA timezone {value!r}") from error
        return value

    @field_validator("time")
    @classmethod
    def _hh_mm(cls, value: str | None) -> str | None:
        if value is not None and not HH_MM.match(value):
            raise ValueError("time must be HH:MM on a 24-hour clock, e.g. '02:30'")
        return value

    @field_validator("day_of_week")
    @classmethod
    def _weekday(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in WEEKDAYS:
            raise ValueError(f"day_of_week must be one of {', '.join(WEEKDAYS)}")
        return value.lower() if value else value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if len(value.split()) != 5:
            raise ValueError("cron must have 5 fields: minute hour day-of-month month weekday")
        try:
            CronSim(value, datetime.now(UTC))
        except CronSimError as error:
            raise ValueError(f"invalid cron expression: {error}") from error
        return value

    @model_validator(mode="after")
    def _fields_fit_frequency(self) -> ScheduleSpec:
        needs = {
            "custom": ("cron",),
            "every_n_minutes": ("interval_minutes",),
        }.get(self.frequency, ())
        for name in needs:
            if getattr(self, name) is None:
                raise ValueError(f"{self.frequency} schedules need {name}")
        if self.cron is not None and self.frequency != "custom":
            raise ValueError("cron is only for frequency 'custom'")
        if self.frequency == "every_n_minutes":
            _every_n_minutes(self.interval_minutes or 60)
        return self

    def to_cron(self) -> str:
        hour, minute = (0, 0)
        if self.time:
            hour, minute = (int(part) for part in self.time.split(":"))
        if self.frequency == "hourly":
            return "0 * * * *"
        if self.frequency == "daily":
            return f"{minute} {hour} * * *"
        if self.frequency == "weekly":
            return f"{minute} {hour} * * {WEEKDAYS.index(self.day_of_week or 'sunday')}"
        if self.frequency == "every_n_minutes":
            return _every_n_minutes(self.interval_minutes or 60)
        return self.cron or ""


def _every_n_minutes(interval: int) -> str:
    if interval < 60:
        return f"*/{interval} * * * *"
    if interval % 60 == 0 and interval < 1440:
        return f"0 */{interval // 60} * * *"
    if interval == 1440:
        return "0 0 * * *"
    raise ValueError("interval_minutes of an hour or more must be a whole number of hours")


class ExecutionSpec(StrictModel):
    priority: Literal["normal", "high"] = "normal"
    high_memory: bool = False
    max_files_per_batch: int = Field(default=500, ge=1, le=10_000)
    max_bytes_per_batch: int = Field(default=512 * 1024 * 1024, ge=1024)

    @property
    def work_queue(self) -> str:
        if self.priority == "high":
            return "priority"
        return "high-memory" if self.high_memory else "default"


class IngestionSpec(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    cluster_id: str | None = Field(default=None, max_length=200)
    source: SourceSpec
    format: FormatSpec
    destination: DestinationSpec
    schedule: ScheduleSpec | None = None
    overwrite_policy: Literal["ignore", "reingest"] = "ignore"
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)

    @model_validator(mode="after")
    def _one_listing_schedule(self) -> IngestionSpec:
        """With notifications, a schedule is the safety-net listing: giving an interval too
        is a contradiction (the default interval simply gives way to the schedule)."""
        notifications = self.source.notifications
        if notifications is None or notifications.safety_net_interval_minutes is None:
            return self
        if self.schedule:
            raise ValueError(
                "give either a schedule or source.notifications.safety_net_interval_minutes: "
                "with notifications, the scheduled listing is the safety net"
            )
        _every_n_minutes(notifications.safety_net_interval_minutes)
        return self

    @property
    def uses_notifications(self) -> bool:
        return bool(self.source.notifications and self.source.notifications.enabled)

    def listing_cron(self) -> tuple[str, str] | None:
        """When to list the source, as (cron, timezone): the schedule, or else the safety-net
        listing of an ingestion fed by notifications; None for runs on demand only."""
        if self.schedule is not None:
            return self.schedule.to_cron(), self.schedule.timezone
        notifications = self.source.notifications
        if notifications and notifications.enabled:
            return _every_n_minutes(notifications.safety_net_minutes), "UTC"
        return None

    def stored(self) -> dict[str, Any]:
        """The spec as kept in the database and shown to users: credentials left out."""
        return self.model_dump(mode="json", by_alias=True, exclude={"source": {"credentials"}})


def qualify_table(name: str, destination: DestinationSpec) -> str:
    """`table`, `database.table` or `catalog.database.table`, completed from the ingestion's
    destination, as `catalog.database.table`; every part a validated identifier."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 3 or not all(IDENTIFIER.match(part) for part in parts):
        raise ValueError(
            "target_table must be table, database.table or catalog.database.table, "
            "each part letters, digits and underscores"
        )
    defaults = [destination.catalog, destination.database]
    return ".".join([*defaults[: 3 - len(parts)], *parts])


def quoted(qualified: str) -> str:
    """A `catalog.database.table` of validated identifiers, quoted for Spark SQL."""
    return ".".join(f"`{part}`" for part in qualified.split("."))


class BackfillSpec(StrictModel):
    """Which of an ingestion's recorded files a backfill queues again, and where they go."""

    since: datetime = Field(description="queue files discovered at or after this instant")
    until: datetime | None = Field(default=None, description="and before this one")
    reprocess: bool = Field(
        default=False, description="ingest files again even when they were ingested already"
    )
    target_table: str | None = Field(
        default=None,
        max_length=400,
        description="with reprocess: write to this table instead of the ingestion's",
    )

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a timezone, e.g. 2026-11-01T00:00:00Z")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> BackfillSpec:
        if self.since > datetime.now(UTC):
            raise ValueError("since is in the future: nothing to backfill yet")
        if self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        if self.target_table is not None:
            if not self.reprocess:
                raise ValueError("target_table needs reprocess: only reprocessed files move")
            qualify_table(self.target_table, DestinationSpec(table="check"))
        return self
