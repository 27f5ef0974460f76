"""/api/v1/runs: one run with its per-status file counts."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from autoloader_api.deps import TenantDep, UowDep
from autoloader_api.schemas import RunOut
from shared.models import Run
from shared.triggers import NotFound
from shared.uow import UnitOfWork

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])


async def run_out(uow: UnitOfWork, run: Run) -> RunOut:
    out = RunOut.model_validate(run)
    out.file_counts = await uow.runs.file_counts(run.id)
    if run.started_at and run.finished_at:
        out.duration_seconds = (run.finished_at - run.started_at).total_seconds()
    return out


@router.get("/{run_id}", response_model=RunOut)
async def get_run(run_id: uuid.UUID, tenant: TenantDep, uow: UowDep) -> RunOut:
    run = await uow.runs.get(tenant.id, run_id)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return await run_out(uow, run)
