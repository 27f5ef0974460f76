"""Asking for a run: on demand, from an upstream command, or as a backfill.

The REST API and the command consumer both come here, so a run is recorded the same way
whoever asks: the run row and its event (IngestionTriggered or BackfillRequested) commit
together, and scheduler-sync turns the event into a Prefect flow run.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.events import BackfillRequested, IngestionTriggered
from shared.models import Ingestion, IngestionStatus, Run, RunStatus, RunTrigger, Tenant
from shared.spec import BackfillSpec, IngestionSpec, qualify_table
from shared.tenancy import check_table
from shared.uow import UnitOfWork


class NotFound(LookupError):
    pass


class Conflict(RuntimeError):
    pass


async def locked_ingestion(
    uow: UnitOfWork, tenant_id: uuid.UUID, ingestion_id: uuid.UUID
) -> Ingestion:
    ingestion = await uow.ingestions.get(tenant_id, ingestion_id, for_update=True)
    if ingestion is None:
        raise NotFound(f"ingestion {ingestion_id} not found")
    return ingestion


def backfill_parameters(ingestion: Ingestion, backfill: BackfillSpec) -> dict[str, object]:
    """The backfill as the run records it, its target table fully qualified."""
    parameters = backfill.model_dump(mode="json")
    if backfill.target_table is not None:
        destination = IngestionSpec.model_validate(ingestion.spec).destination
        parameters["target_table"] = qualify_table(backfill.target_table, destination)
    return parameters


async def trigger_run(
    uow: UnitOfWork,
    tenant_id: uuid.UUID,
    ingestion_id: uuid.UUID,
    *,
    trigger: RunTrigger,
    requested_by: str | None,
    idempotency_key: str | None = None,
    backfill: BackfillSpec | None = None,
    record_refusal: bool = False,
) -> Run:
    """Record a run and its event; a repeated idempotency key returns the earlier run.

    A paused ingestion refuses: with record_refusal the refusal is kept as a failed run
    (so an upstream command's outcome shows), else Conflict is raised."""
    ingestion = await locked_ingestion(uow, tenant_id, ingestion_id)
    if idempotency_key is not None:
        # The ingestion's row lock serialises triggers, so a repeated key finds its run.
        earlier = await uow.runs.by_idempotency_key(ingestion.id, idempotency_key)
        if earlier is not None:
            return earlier
    refusal = None
    if ingestion.status == IngestionStatus.PAUSED:
        refusal = f"ingestion {ingestion_id} is paused: resume it before running it"
    if refusal is not None and not record_refusal:
        raise Conflict(refusal)
    parameters = backfill_parameters(ingestion, backfill) if backfill else None
    if parameters and parameters.get("target_table"):
        tenant = await uow.session.get_one(Tenant, tenant_id)
        await check_table(uow.session, tenant, str(parameters["target_table"]), "target_table")
    run = Run(
        id=uuid.uuid4(),
        ingestion_id=ingestion.id,
        tenant_id=tenant_id,
        trigger=trigger,
        requested_by=requested_by,
        idempotency_key=idempotency_key,
        parameters=parameters,
    )
    if refusal is not None:
        run.status, run.error, run.finished_at = RunStatus.FAILED, refusal, datetime.now(UTC)
    uow.runs.add(run)
    if refusal is None:
        uow.emit(_event(run, backfill))
    await uow.commit()
    return run


def _event(run: Run, backfill: BackfillSpec | None) -> IngestionTriggered | BackfillRequested:
    if backfill is None:
        return IngestionTriggered(
            tenant_id=run.tenant_id,
            ingestion_id=run.ingestion_id,
            run_id=run.id,
            trigger=run.trigger,
            requested_by=run.requested_by,
        )
    parameters = run.parameters or {}
    return BackfillRequested(
        tenant_id=run.tenant_id,
        ingestion_id=run.ingestion_id,
        run_id=run.id,
        since=backfill.since,
        until=backfill.until,
        reprocess=backfill.reprocess,
        target_table=parameters.get("target_table"),
        requested_by=run.requested_by,
    )
