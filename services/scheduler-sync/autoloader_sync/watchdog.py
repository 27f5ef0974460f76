"""The run watchdog: no run stays queued or running without live work behind it.

Every pass reads the unfinished runs whose discovery has not finished (a run whose discovery
finished is closed by its files), and their flow runs in Prefect in one request per page. A run
is dead when its flow run is CRASHED, FAILED or CANCELLED; or is PENDING or RUNNING in Prefect
while neither the state nor the run's heartbeat is newer than the stale limit (its process was
killed and nobody reported it: the watchdog marks it CRASHED); or when a queued run has no flow
run at all past a deadline. A dead run gets a new flow run of its ingestion's deployment, for the
same run, until it has had `max_flow_attempts`; then it is closed with the true reason.

Two passes at once (two replicas) agree: a retry's flow run has the idempotency key
`<run id>:<attempt>`, so both create the same one, and the attempt is counted by a conditional
UPDATE that only one of them wins. Discovery again is harmless: it records files idempotently.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectNotFound
from prometheus_client import Counter
from sqlalchemy import select, update

from autoloader_sync.prefect_gateway import FlowRunView, flow_run_key, is_unavailable
from autoloader_sync.settings import SyncSettings
from autoloader_sync.sync import Syncer
from shared.consumers import is_transient
from shared.errors import TIMEOUT, UNEXPECTED, classify, public_error
from shared.models import Run, RunStatus
from shared.periodic import every
from shared.runs import UNFINISHED, close_interrupted_run

log = logging.getLogger(__name__)

RETRIED = Counter("autoloader_watchdog_retries_total", "Runs given a new flow run")
CLOSED = Counter("autoloader_watchdog_closed_total", "Runs closed after their last flow run")

DEAD_STATES = (StateType.CRASHED, StateType.FAILED, StateType.CANCELLED)
LIVE_STATES = (StateType.PENDING, StateType.RUNNING)
PASS_LIMIT = 500  # runs looked at per pass; the oldest first, the rest on the next pass


@dataclass(frozen=True)
class Why:
    """Why a run is dead: the full text for the log, and what its tenant may be told (the
    reason words of shared.errors and a summary that quotes no message from elsewhere)."""

    reason: str
    shown: str
    kind: str = UNEXPECTED


@dataclass(frozen=True)
class Dead:
    """A run without live work behind it, and why."""

    run_id: uuid.UUID
    ingestion_id: uuid.UUID
    attempts: int
    reason: str
    why: Why


@dataclass
class Watchdog:
    syncer: Syncer
    settings: SyncSettings

    async def once(self) -> list[Dead]:
        """One pass: find dead runs, and retry or close each. Return what was found dead."""
        runs = await self._unfinished_runs()
        if not runs:
            return []
        flow_runs = await self.syncer.prefect.flow_runs(
            [run.prefect_flow_run_id for run in runs if run.prefect_flow_run_id],
            [str(run.id) for run in runs if not run.prefect_flow_run_id],
        )
        by_id = {flow_run.id: flow_run for flow_run in flow_runs}
        by_key = {flow_run.idempotency_key: flow_run for flow_run in flow_runs}
        now = datetime.now(UTC)
        dead = []
        for run in runs:
            flow_run = by_id.get(run.prefect_flow_run_id) or by_key.get(str(run.id))
            why = await self._why_dead(run, flow_run, now)
            if why is not None:
                dead.append(Dead(run.id, run.ingestion_id, run.flow_attempts, why.reason, why))
        for found in dead:
            try:
                await self._retry_or_close(found)
            except Exception as error:
                if is_unavailable(error) or is_transient(error):
                    raise  # the whole pass waits for the next one
                log.error(
                    "run %s could not be retried or closed: %s: %s",
                    found.run_id,
                    type(error).__name__,
                    error,
                    extra={"run_id": str(found.run_id)},
                )
        return dead

    async def _unfinished_runs(self) -> list[Any]:
        async with self.syncer.sessions() as session:
            rows = await session.execute(
                select(
                    Run.id,
                    Run.ingestion_id,
                    Run.status,
                    Run.prefect_flow_run_id,
                    Run.heartbeat_at,
                    Run.created_at,
                    Run.flow_attempts,
                )
                .where(Run.status.in_(UNFINISHED), Run.files_expected.is_(None))
                .order_by(Run.created_at)
                .limit(PASS_LIMIT)
            )
            return list(rows.all())

    async def _why_dead(self, run: Any, flow_run: FlowRunView | None, now: datetime) -> Why | None:
        stale = timedelta(seconds=self.settings.watchdog_stale_heartbeat_seconds)
        if flow_run is None:
            if run.prefect_flow_run_id is not None:
                last = run.heartbeat_at or run.created_at
                if now - last > stale:
                    return Why(
                        f"its flow run {run.prefect_flow_run_id} no longer exists in Prefect",
                        "its flow run no longer exists",
                    )
                return None
            deadline = timedelta(seconds=self.settings.watchdog_queued_deadline_seconds)
            if run.status == RunStatus.QUEUED and now - run.created_at > deadline:
                return Why(
                    f"no flow run was started for it within {deadline.seconds} s",
                    f"no flow run started within {deadline.seconds} s",
                    TIMEOUT,
                )
            return None
        if flow_run.state_type in DEAD_STATES:
            # The state message is the flow's raw exception text: for the log only.
            message = flow_run.state_message
            return Why(
                f"its flow run {flow_run.id} ended {flow_run.state_name}"
                + (f": {message}" if message else ""),
                f"its flow run ended {flow_run.state_name}",
                classify(message) if message else UNEXPECTED,
            )
        if flow_run.state_type in LIVE_STATES:
            signs = [sign for sign in (run.heartbeat_at, flow_run.state_since) if sign is not None]
            if signs and now - max(signs) > stale:
                message = (
                    f"no sign of life from run {run.id} for over {stale.seconds} s "
                    f"while {flow_run.state_name}: its process is gone"
                )
                await self.syncer.prefect.crash_flow_run(flow_run.id, message)
                return Why(
                    f"its flow run {flow_run.id} crashed: {message}",
                    f"its flow run crashed: no sign of life for over {stale.seconds} s",
                )
        return None

    async def _retry_or_close(self, dead: Dead) -> None:
        attempt = dead.attempts + 1
        if attempt < self.settings.watchdog_max_flow_attempts and await self._retry(dead, attempt):
            return
        shown = public_error(
            dead.reason,
            log,
            where="discovery failed",
            reason=dead.why.kind,
            detail=f"{dead.why.shown}, after {attempt} flow runs",
            about=f"run {dead.run_id}",
            extra={"run_id": str(dead.run_id)},
        )
        async with self.syncer.sessions() as session:
            status = await close_interrupted_run(session, dead.run_id, shown)
        if status is not None:
            CLOSED.inc()
            log.warning(
                "run %s closed %s: %s",
                dead.run_id,
                status,
                shown,
                extra={"run_id": str(dead.run_id)},
            )

    async def _retry(self, dead: Dead, attempt: int) -> bool:
        """Give the run flow run number ``attempt`` + 1; False if its ingestion is gone."""
        deployment_id = await self.syncer.deployment_for(dead.ingestion_id)
        if deployment_id is None:
            return False
        parameters = {"ingestion_id": str(dead.ingestion_id), "run_id": str(dead.run_id)}
        try:
            flow_run_id = await self.syncer.prefect.create_flow_run(
                deployment_id, dead.run_id, parameters, attempt
            )
        except ObjectNotFound:  # the deployment was lost since it was recorded: recreate it
            deployment_id = await self.syncer.deployment_for(dead.ingestion_id, resync=True)
            if deployment_id is None:
                return False
            flow_run_id = await self.syncer.prefect.create_flow_run(
                deployment_id, dead.run_id, parameters, attempt
            )
        async with self.syncer.sessions() as session, session.begin():
            won = await session.execute(
                update(Run)
                .where(
                    Run.id == dead.run_id,
                    Run.flow_attempts == dead.attempts,
                    Run.status.in_(UNFINISHED),
                    Run.files_expected.is_(None),
                )
                .values(flow_attempts=attempt, prefect_flow_run_id=flow_run_id)
                .returning(Run.id)
            )
            counted = won.first() is not None
        if counted:
            RETRIED.inc()
            log.warning(
                "run %s retried as flow run %s (%s): %s",
                dead.run_id,
                flow_run_id,
                flow_run_key(dead.run_id, attempt),
                dead.reason,
                extra={"run_id": str(dead.run_id)},
            )
        return True


async def periodic_watchdog(watchdog: Watchdog, stop: asyncio.Event) -> None:
    """Run the watchdog every `watchdog_interval_seconds` until ``stop`` is set."""
    await every(watchdog.settings.watchdog_interval_seconds, stop, watchdog.once, "run watchdog")
