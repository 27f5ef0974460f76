"""Operational endpoints outside /api/v1: health and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from autoloader_api.deps import ContainerDep
from autoloader_api.settings import ApiSettings
from shared.preflight import Check, checks_for, run_checks
from shared.uow import UnitOfWork

router = APIRouter(tags=["operations"])

OUTBOX_AGE = Gauge(
    "autoloader_outbox_oldest_unsent_seconds", "Age of the oldest outbox row not yet on Kafka"
)


def dependency_checks(settings: ApiSettings) -> dict[str, Check]:
    return checks_for(settings, "database", "kafka")


@router.get("/health")
async def health(container: ContainerDep) -> JSONResponse:
    """Database and Kafka reachability, and how far the outbox relay lags behind."""
    results = await run_checks(dependency_checks(container.settings))
    async with UnitOfWork(container.sessions) as uow:
        age = await uow.outbox.oldest_unsent_age_seconds()
    healthy = all(result.ok for result in results)
    body = {
        "status": "healthy" if healthy else "degraded",
        **{result.name: {"ok": result.ok, "detail": result.detail} for result in results},
        "outbox_oldest_unsent_seconds": age,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(container: ContainerDep) -> Response:
    async with UnitOfWork(container.sessions) as uow:
        OUTBOX_AGE.set(await uow.outbox.oldest_unsent_age_seconds() or 0)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
