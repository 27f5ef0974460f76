"""Everything scheduler-sync asks of Prefect, behind one small class.

Deployment creation is an upsert by (flow, name) in Prefect, and flow runs are created with an
idempotency key, so each call can be repeated safely.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterTags,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterIdempotencyKey,
    Operator,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule
from prefect.client.schemas.sorting import DeploymentSort
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.states import Crashed

FLOW_NAME = "run_ingestion"
TAG = "autoloader"
PAGE_SIZE = 200  # the Prefect server's largest page (PREFECT_API_DEFAULT_LIMIT)


def deployment_name(ingestion_id: uuid.UUID) -> str:
    return f"ingestion-{ingestion_id}"


def flow_run_key(run_id: uuid.UUID, attempt: int) -> str:
    """The idempotency key of a run's flow run: the run id, then `<run id>:<attempt>`."""
    return f"{run_id}:{attempt}" if attempt else str(run_id)


@dataclass(frozen=True)
class FlowRunView:
    """What the run watchdog needs of a flow run."""

    id: uuid.UUID
    idempotency_key: str | None
    state_type: StateType | None
    state_name: str | None
    state_message: str | None
    state_since: datetime | None

    @classmethod
    def of(cls, flow_run: FlowRun) -> FlowRunView:
        state = flow_run.state
        return cls(
            id=flow_run.id,
            idempotency_key=flow_run.idempotency_key,
            state_type=state.type if state else None,
            state_name=state.name if state else None,
            state_message=state.message if state else None,
            state_since=state.timestamp if state else None,
        )


@dataclass(frozen=True)
class DeploymentSpec:
    """The deployment one ingestion should have."""

    ingestion_id: uuid.UUID
    cron: str | None
    timezone: str | None
    tags: tuple[str, ...]
    work_queue: str
    paused: bool
    parameters: dict[str, Any]
    job_variables: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return deployment_name(self.ingestion_id)


@dataclass(frozen=True)
class DeploymentState:
    """What Prefect has, in the terms DeploymentSpec uses, to find drift."""

    id: uuid.UUID
    name: str
    cron: str | None
    timezone: str | None
    tags: tuple[str, ...]
    work_queue: str | None
    paused: bool
    parameters: dict[str, Any]
    job_variables: dict[str, Any] = field(default_factory=dict)

    def matches(self, spec: DeploymentSpec) -> bool:
        return (
            self.cron == spec.cron
            and (self.timezone or None) == (spec.timezone if spec.cron else None)
            and set(self.tags) == set(spec.tags)
            and self.work_queue == spec.work_queue
            and self.paused == spec.paused
            and self.parameters == spec.parameters
            and self.job_variables == spec.job_variables
        )


def is_unavailable(error: BaseException) -> bool:
    """True for failures that pass when Prefect comes back: retry these, never dead-letter."""
    if isinstance(error, httpx.TransportError | OSError | TimeoutError):
        return True
    if isinstance(error, PrefectHTTPStatusError):
        return error.response.status_code >= 500 or error.response.status_code == 429
    return False


class PrefectGateway:
    def __init__(self, api_url: str, work_pool: str, entrypoint: str) -> None:
        self.api_url = api_url
        self.work_pool = work_pool
        self.entrypoint = entrypoint

    def _client(self) -> PrefectClient:
        return PrefectClient(self.api_url, httpx_settings={"timeout": 10})

    async def upsert_deployment(self, spec: DeploymentSpec) -> uuid.UUID:
        async with self._client() as client:
            flow_id = await client.create_flow_from_name(FLOW_NAME)
            schedules = []
            if spec.cron:
                schedule = CronSchedule(cron=spec.cron, timezone=spec.timezone or "UTC")
                schedules.append(DeploymentScheduleCreate(schedule=schedule, active=True))
            deployment_id = await client.create_deployment(
                flow_id=flow_id,
                name=spec.name,
                schedules=schedules,
                parameters=spec.parameters,
                work_pool_name=self.work_pool,
                work_queue_name=spec.work_queue,
                tags=list(spec.tags),
                entrypoint=self.entrypoint,
                paused=spec.paused,
                enforce_parameter_schema=False,
                job_variables=spec.job_variables,
            )
            await self._replace_schedules(client, deployment_id, schedules)
            if spec.paused:
                await client.pause_deployment(deployment_id)
            else:
                await client.resume_deployment(deployment_id)
            return deployment_id

    @staticmethod
    async def _replace_schedules(
        client: PrefectClient, deployment_id: uuid.UUID, wanted: list[DeploymentScheduleCreate]
    ) -> None:
        current = await client.read_deployment_schedules(deployment_id)
        have = [(s.schedule, s.active) for s in current]
        if have == [(s.schedule, s.active) for s in wanted]:
            return
        for schedule in current:
            await client.delete_deployment_schedule(deployment_id, schedule.id)
        if wanted:
            await client.create_deployment_schedules(
                deployment_id, [(s.schedule, bool(s.active)) for s in wanted]
            )

    async def delete_deployment(self, ingestion_id: uuid.UUID) -> bool:
        """Delete the ingestion's deployment; False if there was none."""
        return await self.delete_deployment_named(deployment_name(ingestion_id))

    async def delete_deployment_named(self, name: str) -> bool:
        async with self._client() as client:
            try:
                deployment = await client.read_deployment_by_name(f"{FLOW_NAME}/{name}")
            except ObjectNotFound:
                return False
            try:
                await client.delete_deployment(deployment.id)
            except ObjectNotFound:
                return False
            return True

    async def create_flow_run(
        self,
        deployment_id: uuid.UUID,
        run_id: uuid.UUID,
        parameters: dict[str, Any],
        attempt: int = 0,
    ) -> uuid.UUID:
        """The run's flow run for ``attempt`` (0 for the first, then the watchdog's retries),
        created once however often this is called: its idempotency key names both."""
        async with self._client() as client:
            try:
                flow_run = await client.create_flow_run_from_deployment(
                    deployment_id,
                    parameters=parameters,
                    idempotency_key=flow_run_key(run_id, attempt),
                    tags=[TAG, f"run:{run_id}"],
                )
            except PrefectHTTPStatusError as error:
                if error.response.status_code == 404:  # the deployment is gone
                    raise ObjectNotFound(http_exc=error) from error
                raise
            return flow_run.id

    async def flow_runs(self, ids: Sequence[uuid.UUID], keys: Sequence[str]) -> list[FlowRunView]:
        """The flow runs with these ids or idempotency keys, in one request per page."""
        found: list[FlowRunView] = []
        wanted_ids, wanted_keys = list(ids), list(keys)
        async with self._client() as client:
            for start in range(0, max(len(wanted_ids), len(wanted_keys)), PAGE_SIZE // 2):
                page_ids = wanted_ids[start : start + PAGE_SIZE // 2]
                page_keys = wanted_keys[start : start + PAGE_SIZE // 2]
                # `operator` comes from a mixin the pydantic mypy plugin does not see.
                flow_runs = await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(  # type: ignore[call-arg]
                        operator=Operator.or_,
                        id=FlowRunFilterId(any_=page_ids),
                        idempotency_key=FlowRunFilterIdempotencyKey(any_=page_keys),
                    ),
                    limit=PAGE_SIZE,
                )
                found += [FlowRunView.of(flow_run) for flow_run in flow_runs]
        return found

    async def crash_flow_run(self, flow_run_id: uuid.UUID, message: str) -> None:
        """Record in Prefect that a flow run's process is gone, which nobody else reports."""
        async with self._client() as client:
            await client.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)

    async def deployments(self) -> list[DeploymentState]:
        """Every deployment Autoloader manages (tagged `autoloader`), page by page: the server
        returns at most PAGE_SIZE per request."""
        found: list[DeploymentResponse] = []
        async with self._client() as client:
            while True:
                page = await client.read_deployments(
                    deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[TAG])),
                    sort=DeploymentSort.NAME_ASC,
                    limit=PAGE_SIZE,
                    offset=len(found),
                )
                found += page
                if len(page) < PAGE_SIZE:
                    break
        states = []
        for deployment in found:
            crons = [
                s.schedule for s in deployment.schedules if isinstance(s.schedule, CronSchedule)
            ]
            states.append(
                DeploymentState(
                    id=deployment.id,
                    name=deployment.name,
                    cron=crons[0].cron if crons else None,
                    timezone=crons[0].timezone if crons else None,
                    tags=tuple(deployment.tags),
                    work_queue=deployment.work_queue_name,
                    paused=bool(deployment.paused),
                    parameters=dict(deployment.parameters),
                    job_variables=dict(deployment.job_variables or {}),
                )
            )
        return states
