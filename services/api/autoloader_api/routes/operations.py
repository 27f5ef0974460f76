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
from shared.uow import UnitOfWork

router = APIRouter(tags=["operations"])

# Below Kubernetes' default probe timeout (1 s is too tight for a pool under load, 5 s is the
# chart's timeoutSeconds), so the probe answers 503 rather than timing out.
READY_TIMEOUT_SECONDS = 3.0

OUTBOX_AGE = Gauge(
    "autoloader_outbox_oldest_unsent_seconds", "Age of the oldest outbox row not yet on Kafka"
)


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
    async with UnitOfWork(container.sessions) as uow:
        OUTBOX_AGE.set(await uow.outbox.oldest_unsent_age_seconds() or 0)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
