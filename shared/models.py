"""SQLAlchemy models of Autoloader's state. Alembic revisions in shared/migrations create them."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB}
    # Fetch server-set columns (created_at, updated_at) with RETURNING, so a committed object
    # can be read without another round trip, which an async session cannot make implicitly.
    __mapper_args__: Any = {"eager_defaults": True}  # noqa: RUF012 - read by declarative


class IngestionStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"


class RunTrigger(enum.StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    UPSTREAM = "upstream"
    S3_EVENT = "s3_event"
    BACKFILL = "backfill"


class FileStatus(enum.StrEnum):
    PENDING = "PENDING"
    CLAIMED = "CLAIMED"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class SyncStatus(enum.StrEnum):
    PENDING = "pending"
    SYNCED = "synced"
    FAILED = "failed"


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = _now()


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TenantNamespace(Base):
    """A `catalog.database` an operator granted to a tenant, besides its own `t_<tenant>`."""

    __tablename__ = "tenant_namespaces"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    namespace: Mapped[str] = mapped_column(String(300), primary_key=True)
    created_at: Mapped[datetime] = _now()


class SourceClaim(Base):
    """A tenant's claim on a bucket, or on a prefix of it ('' for the whole bucket). The first
    ingestion on an unclaimed bucket claims it whole; other tenants need an operator's grant."""

    __tablename__ = "source_claims"

    bucket: Mapped[str] = mapped_column(String(255), primary_key=True)
    prefix: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    granted_by: Mapped[str] = mapped_column(String(16))  # 'first-use' or 'operator'
    created_at: Mapped[datetime] = _now()


class Ingestion(Base):
    """One ingestion: its validated spec (without credentials) plus the columns queries use."""

    __tablename__ = "ingestions"
    __table_args__ = (
        Index(
            "uq_ingestions_tenant_name",
            "tenant_id",
            "name",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=IngestionStatus.ACTIVE)
    spec: Mapped[dict[str, Any]]
    credentials: Mapped[bytes | None] = mapped_column(LargeBinary)
    source_type: Mapped[str] = mapped_column(String(16))
    source_bucket: Mapped[str | None] = mapped_column(String(255), index=True)
    schedule_cron: Mapped[str | None] = mapped_column(String(120))
    schedule_timezone: Mapped[str | None] = mapped_column(String(64))
    work_queue: Mapped[str] = mapped_column(String(32), default="default")
    version: Mapped[int] = mapped_column(Integer, default=1)
    prefect_deployment_id: Mapped[uuid.UUID | None]
    sync_status: Mapped[str] = mapped_column(String(16), default=SyncStatus.PENDING)
    sync_error: Mapped[str | None] = mapped_column(Text)
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The processor's last commit into Iceberg for this ingestion (ingestion status).
    last_commit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_snapshot_id: Mapped[int | None] = mapped_column(BigInteger)
    last_commit_table: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("ingestion_id", "idempotency_key", name="uq_runs_idempotency"),
        Index(
            "ix_runs_unfinished",
            "created_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    ingestion_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ingestions.id"), index=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    trigger: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED)
    requested_by: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    prefect_flow_run_id: Mapped[uuid.UUID | None]
    files_expected: Mapped[int | None] = mapped_column(Integer)
    records: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # a backfill's window
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # a backfill's progress
    created_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    flow_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FileState(Base):
    """One object version (path + ETag) of one ingestion, for one table: the unit of
    exactly-once. target_table is NULL for the ingestion's own table, or the table a
    reprocessing backfill writes the file to."""

    __tablename__ = "file_state"
    __table_args__ = (
        UniqueConstraint(
            "ingestion_id",
            "path",
            "etag",
            "target_table",
            name="uq_file_state_object",
            postgresql_nulls_not_distinct=True,
        ),
        Index("ix_file_state_ingestion_status", "ingestion_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    ingestion_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ingestions.id"))
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("runs.id"), index=True)
    path: Mapped[str] = mapped_column(Text)
    etag: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    last_modified: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default=FileStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    records: Mapped[int | None] = mapped_column(BigInteger)
    batch_id: Mapped[str | None] = mapped_column(String(64))
    target_table: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claim_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    discovered_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class OutboxEvent(Base):
    """An event committed with the change it describes, waiting for the relay to publish it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = _now()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
