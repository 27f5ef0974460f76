"""Response bodies of the REST API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class IngestionOut(BaseModel):
    id: uuid.UUID
    name: str
    status: str
    spec: dict[str, Any]
    schedule_cron: str | None
    schedule_timezone: str | None
    work_queue: str
    prefect_deployment_id: uuid.UUID | None
    sync_status: str
    sync_error: str | None
    last_synced_at: datetime | None
    created_at: datetime
    updated_at: datetime


class RunAccepted(BaseModel):
    run_id: uuid.UUID
    status: str


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    ingestion_id: uuid.UUID
    trigger: str
    status: str
    requested_by: str | None
    prefect_flow_run_id: uuid.UUID | None
    files_expected: int | None
    records: int
    bytes: int
    error: str | None
    parameters: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None = None
    file_counts: dict[str, int] = {}


class FileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    run_id: uuid.UUID | None
    path: str
    etag: str
    size: int
    status: str
    attempts: int
    error: str | None
    records: int | None
    target_table: str | None = None
    discovered_at: datetime
    updated_at: datetime


class Problem(BaseModel):
    detail: str
