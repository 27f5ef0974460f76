"""/api/v1/ingestions: thin handlers over the use cases in autoloader_api.ingestions."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response, status

from autoloader_api import ingestions
from autoloader_api.deps import CipherDep, TenancyDep, TenantDep, UowDep
from autoloader_api.routes.runs import run_out
from autoloader_api.schemas import FileOut, IngestionOut, Page, RunAccepted, RunOut
from shared.models import FileStatus, IngestionStatus, RunTrigger
from shared.spec import BackfillSpec, IngestionSpec
from shared.status import IngestionStatusReport, ingestion_status
from shared.triggers import NotFound, trigger_run

router = APIRouter(prefix="/api/v1/ingestions", tags=["ingestions"])

Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=2**63 - 1)]  # PostgreSQL's OFFSET is a bigint


@router.post("", status_code=status.HTTP_201_CREATED, response_model=IngestionOut)
async def create_ingestion(
    spec: IngestionSpec, tenant: TenantDep, uow: UowDep, cipher: CipherDep, tenancy: TenancyDep
) -> IngestionOut:
    created = await ingestions.create(uow, tenant, spec, cipher, tenancy)
    return ingestions.to_out(created, cipher)


@router.get("", response_model=Page[IngestionOut])
async def list_ingestions(
    tenant: TenantDep,
    uow: UowDep,
    cipher: CipherDep,
    status: IngestionStatus | None = None,
    name: Annotated[str | None, Query(max_length=200, description="substring match")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[IngestionOut]:
    rows, total = await uow.ingestions.list(
        tenant.id, status=status, name=name, limit=limit, offset=offset
    )
    items = [ingestions.to_out(row, cipher) for row in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/{ingestion_id}", response_model=IngestionOut)
async def get_ingestion(
    ingestion_id: uuid.UUID, tenant: TenantDep, uow: UowDep, cipher: CipherDep
) -> IngestionOut:
    ingestion = await uow.ingestions.get(tenant.id, ingestion_id)
    if ingestion is None:
        raise NotFound(f"ingestion {ingestion_id} not found")
    return ingestions.to_out(ingestion, cipher)


@router.put("/{ingestion_id}", response_model=IngestionOut)
async def replace_ingestion(
    ingestion_id: uuid.UUID,
    spec: IngestionSpec,
    tenant: TenantDep,
    uow: UowDep,
    cipher: CipherDep,
    tenancy: TenancyDep,
) -> IngestionOut:
    updated = await ingestions.replace(uow, tenant, ingestion_id, spec, cipher, tenancy)
    return ingestions.to_out(updated, cipher)


@router.patch("/{ingestion_id}", response_model=IngestionOut)
async def patch_ingestion(
    ingestion_id: uuid.UUID,
    changes: Annotated[dict[str, Any], Body(description="a JSON merge patch of the spec")],
    tenant: TenantDep,
    uow: UowDep,
    cipher: CipherDep,
    tenancy: TenancyDep,
) -> IngestionOut:
    updated = await ingestions.patch(uow, tenant, ingestion_id, changes, cipher, tenancy)
    return ingestions.to_out(updated, cipher)


@router.delete("/{ingestion_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_ingestion(ingestion_id: uuid.UUID, tenant: TenantDep, uow: UowDep) -> Response:
    await ingestions.delete(uow, tenant, ingestion_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{ingestion_id}/run", status_code=status.HTTP_202_ACCEPTED, response_model=RunAccepted
)
async def run_ingestion(
    ingestion_id: uuid.UUID,
    tenant: TenantDep,
    uow: UowDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> RunAccepted:
    run = await trigger_run(
        uow,
        tenant.id,
        ingestion_id,
        trigger=RunTrigger.MANUAL,
        requested_by=f"api:{tenant.name}",
        idempotency_key=idempotency_key,
    )
    return RunAccepted(run_id=run.id, status=run.status)


@router.post(
    "/{ingestion_id}/backfill", status_code=status.HTTP_202_ACCEPTED, response_model=RunAccepted
)
async def backfill_ingestion(
    ingestion_id: uuid.UUID,
    backfill: BackfillSpec,
    tenant: TenantDep,
    uow: UowDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> RunAccepted:
    """Queue again the ingestion's files discovered in [since, until), from its load history;
    follow the run's `progress` at GET /api/v1/runs/{run_id}."""
    run = await trigger_run(
        uow,
        tenant.id,
        ingestion_id,
        trigger=RunTrigger.BACKFILL,
        requested_by=f"api:{tenant.name}",
        idempotency_key=idempotency_key,
        backfill=backfill,
    )
    return RunAccepted(run_id=run.id, status=run.status)


@router.post("/{ingestion_id}/pause", response_model=IngestionOut)
async def pause_ingestion(
    ingestion_id: uuid.UUID, tenant: TenantDep, uow: UowDep, cipher: CipherDep
) -> IngestionOut:
    ingestion = await ingestions.set_paused(uow, tenant, ingestion_id, paused=True)
    return ingestions.to_out(ingestion, cipher)


@router.post("/{ingestion_id}/resume", response_model=IngestionOut)
async def resume_ingestion(
    ingestion_id: uuid.UUID, tenant: TenantDep, uow: UowDep, cipher: CipherDep
) -> IngestionOut:
    ingestion = await ingestions.set_paused(uow, tenant, ingestion_id, paused=False)
    return ingestions.to_out(ingestion, cipher)


@router.get("/{ingestion_id}/runs", response_model=Page[RunOut])
async def list_runs(
    ingestion_id: uuid.UUID,
    tenant: TenantDep,
    uow: UowDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[RunOut]:
    if await uow.ingestions.get(tenant.id, ingestion_id) is None:
        raise NotFound(f"ingestion {ingestion_id} not found")
    rows, total = await uow.runs.list(ingestion_id, limit=limit, offset=offset)
    items = [await run_out(uow, row) for row in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/{ingestion_id}/files", response_model=Page[FileOut])
async def list_files(
    ingestion_id: uuid.UUID,
    tenant: TenantDep,
    uow: UowDep,
    status: FileStatus | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[FileOut]:
    if await uow.ingestions.get(tenant.id, ingestion_id) is None:
        raise NotFound(f"ingestion {ingestion_id} not found")
    rows, total = await uow.files.list(ingestion_id, status=status, limit=limit, offset=offset)
    items = [FileOut.model_validate(row) for row in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/{ingestion_id}/status", response_model=IngestionStatusReport)
async def get_status(
    ingestion_id: uuid.UUID, tenant: TenantDep, uow: UowDep
) -> IngestionStatusReport:
    """The backlog (pending and claimed files and bytes, the oldest pending file), the last
    commit, the last error, the current run's progress and the sync with Prefect."""
    ingestion = await uow.ingestions.get(tenant.id, ingestion_id)
    if ingestion is None:
        raise NotFound(f"ingestion {ingestion_id} not found")
    return await ingestion_status(uow.session, ingestion)
