"""Operational endpoints outside /api/v1: the Kubernetes probes and Prometheus metrics.

The probes are unauthenticated and say nothing about the stack beyond one status word. Details
(Kafka, the outbox's lag) are at `GET /admin/health`, behind the admin token.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from autoloader_api.deps import ContainerDep
from shared.preflight import OK, database_status
from shared.status import all_backlogs
from shared.uow import UnitOfWork

router = APIRouter(tags=["operations"])

# Below Kubernetes' default probe timeout (1 s is too tight for a pool under load, 5 s is the
# chart's timeoutSeconds), so the probe answers 503 rather than timing out.
READY_TIMEOUT_SECONDS = 3.0

OUTBOX_AGE = Gauge(
    "autoloader_outbox_oldest_unsent_seconds", "Age of the oldest outbox row not yet on Kafka"
)
OUTBOX_BACKLOG = Gauge("autoloader_outbox_unsent", "Outbox rows not yet on Kafka")
INGESTION = ["tenant", "ingestion"]
PENDING_FILES = Gauge("autoloader_pending_files", "Files waiting to be claimed", INGESTION)
PENDING_BYTES = Gauge("autoloader_pending_bytes", "Bytes of the files waiting", INGESTION)
CLAIMED_FILES = Gauge("autoloader_claimed_files", "Files claimed by a processor", INGESTION)
OLDEST_PENDING = Gauge(
    "autoloader_oldest_pending_file_age_seconds",
    "Age of the ingestion's oldest waiting file (0 when none waits)",
    INGESTION,
)
BACKLOG_GAUGES = (PENDING_FILES, PENDING_BYTES, CLAIMED_FILES, OLDEST_PENDING)


@router.get("/livez")
async def livez() -> dict[str, str]:
    """Liveness: the process serves requests. No dependency is checked, so an outage of
    PostgreSQL or Kafka never gets the pod restarted."""
    return {"status": "alive"}


@router.get("/health", include_in_schema=False)
async def health() -> dict[str, str]:
    """The liveness answer under its old path, for callers not yet moved to /livez."""
    return await livez()


@router.get("/readyz")
async def readyz(container: ContainerDep) -> JSONResponse:
    """Readiness: the database answers. Kafka is not checked: while it is away, writes go to
    the outbox and the relay publishes them once it is back."""
    database = await database_status(container.engine, READY_TIMEOUT_SECONDS)
    if database == OK:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "unready", "database": database}, status_code=503)


@router.get("/metrics", include_in_schema=False)
async def metrics(container: ContainerDep) -> Response:
    """The process's metrics, with the database's state read at each scrape: the outbox and
    every live ingestion's backlog (a deleted ingestion's series go away)."""
    async with UnitOfWork(container.sessions) as uow:
        OUTBOX_AGE.set(await uow.outbox.oldest_unsent_age_seconds() or 0)
        OUTBOX_BACKLOG.set(await uow.outbox.unsent_count())
        backlogs = await all_backlogs(uow.session)
    for gauge in BACKLOG_GAUGES:
        gauge.clear()
    for backlog in backlogs:
        labels = (str(backlog.tenant_id), str(backlog.ingestion_id))
        PENDING_FILES.labels(*labels).set(backlog.pending.files)
        PENDING_BYTES.labels(*labels).set(backlog.pending.bytes)
        CLAIMED_FILES.labels(*labels).set(backlog.claimed_files)
        OLDEST_PENDING.labels(*labels).set(backlog.oldest_pending_age_seconds)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
