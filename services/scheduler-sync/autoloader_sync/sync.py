"""Make Prefect match the database, one ingestion or one run at a time.

Events only say *which* ingestion changed; the database says what it should look like now.
So applying an event twice, late, or during a full replay of the topic converges on the same
Prefect state, and a replayed trigger of a run that already has a flow run does nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prefect.exceptions import ObjectNotFound
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_sync.prefect_gateway import TAG, DeploymentSpec, PrefectGateway
from shared.models import Ingestion, IngestionStatus, Run, RunStatus, SyncStatus, Tenant
from shared.settings import FlowRunSettings

log = logging.getLogger(__name__)


def deployment_spec(
    ingestion: Ingestion, tenant: str, flow: FlowRunSettings, command: str | None = None
) -> DeploymentSpec:
    """The deployment the ingestion should have; ``command``, when given, is what the worker
    starts each flow run with (see SyncSettings.flow_run_command)."""
    job_variables: dict[str, Any] = {
        "env": {
            "AUTOLOADER_FLOW_TIMEOUT_SECONDS": str(flow.timeout_seconds),
            "AUTOLOADER_FLOW_RETRIES": str(flow.retries),
            "AUTOLOADER_FLOW_RETRY_DELAY_SECONDS": str(flow.retry_delay_seconds),
        }
    }
    if command:
        job_variables["command"] = command
    return DeploymentSpec(
        ingestion_id=ingestion.id,
        cron=ingestion.schedule_cron,
        timezone=ingestion.schedule_timezone if ingestion.schedule_cron else None,
        tags=(TAG, f"tenant:{tenant}", f"source:{ingestion.source_type}"),
        work_queue=ingestion.work_queue,
        paused=ingestion.status == IngestionStatus.PAUSED,
        parameters={"ingestion_id": str(ingestion.id)},
        job_variables=job_variables,
    )


@dataclass
class Syncer:
    sessions: async_sessionmaker[AsyncSession]
    prefect: PrefectGateway
    flow: FlowRunSettings
    flow_run_command: str | None = None

    def deployment_spec(self, ingestion: Ingestion, tenant: str) -> DeploymentSpec:
        return deployment_spec(ingestion, tenant, self.flow, self.flow_run_command)

    async def sync_ingestion(self, ingestion_id: uuid.UUID) -> str:
        """Create, update or delete the ingestion's deployment; return what was done."""
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(Ingestion, Tenant.name)
                    .join(Tenant, Tenant.id == Ingestion.tenant_id)
                    .where(Ingestion.id == ingestion_id)
                )
            ).first()
        if row is None or row[0].deleted_at is not None:
            deleted = await self.prefect.delete_deployment(ingestion_id)
            return "deleted" if deleted else "absent"
        ingestion, tenant = row
        deployment_id = await self.prefect.upsert_deployment(
            self.deployment_spec(ingestion, tenant)
        )
        await self._record_sync(ingestion_id, deployment_id)
        return "synced"

    async def _record_sync(self, ingestion_id: uuid.UUID, deployment_id: uuid.UUID) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Ingestion)
                .where(Ingestion.id == ingestion_id)
                .values(
                    prefect_deployment_id=deployment_id,
                    sync_status=SyncStatus.SYNCED,
                    sync_error=None,
                    last_synced_at=datetime.now(UTC),
                )
            )

    async def deployment_for(
        self, ingestion_id: uuid.UUID, resync: bool = False
    ) -> uuid.UUID | None:
        """The ingestion's deployment id: the recorded one when in sync, else after a sync."""
        async with self.sessions() as session:
            ingestion = await session.get(Ingestion, ingestion_id)
        if ingestion is None or ingestion.deleted_at is not None:
            return None
        in_sync = ingestion.sync_status == SyncStatus.SYNCED and ingestion.prefect_deployment_id
        if resync or not in_sync:
            if await self.sync_ingestion(ingestion_id) != "synced":
                return None
            async with self.sessions() as session:
                ingestion = await session.get(Ingestion, ingestion_id)
        return ingestion.prefect_deployment_id if ingestion else None

    async def record_failure(self, ingestion_id: uuid.UUID, reason: str) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Ingestion)
                .where(Ingestion.id == ingestion_id)
                .values(
                    sync_status=SyncStatus.FAILED,
                    sync_error=reason[:2000],
                    last_synced_at=datetime.now(UTC),
                )
            )

    async def trigger(self, ingestion_id: uuid.UUID, run_id: uuid.UUID) -> str:
        """Create the run's flow run once; write its id back to the run."""
        async with self.sessions() as session:
            run = await session.get(Run, run_id)
        if run is None:
            return "unknown run"
        if run.prefect_flow_run_id is not None or run.status != RunStatus.QUEUED:
            return "already started"
        deployment_id = await self.deployment_for(ingestion_id)
        if deployment_id is None:
            return "ingestion deleted"
        parameters = {"ingestion_id": str(ingestion_id), "run_id": str(run_id)}
        try:
            flow_run_id = await self.prefect.create_flow_run(deployment_id, run_id, parameters)
        except ObjectNotFound:  # the deployment was lost since it was recorded: recreate it
            deployment_id = await self.deployment_for(ingestion_id, resync=True)
            if deployment_id is None:
                return "ingestion deleted"
            flow_run_id = await self.prefect.create_flow_run(deployment_id, run_id, parameters)
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Run)
                .where(Run.id == run_id, Run.prefect_flow_run_id.is_(None))
                .values(prefect_flow_run_id=flow_run_id)
            )
        return "triggered"
