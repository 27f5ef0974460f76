"""Applying one upstream command of `autoloader.commands`.

A valid command for a known ingestion of its tenant becomes a run, recorded exactly as the
REST API records one (run row and event in one commit, then scheduler-sync starts its flow
run). A command for a paused ingestion is kept as a failed run with the reason. A command
that does not parse, or names a tenant or ingestion that does not exist, goes to the DLQ
with the reason.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.commands import RequestBackfill, UpstreamCommand, parse_command
from shared.consumers import DeadLetters, retrying
from shared.models import Ingestion, Run, RunTrigger, Tenant
from shared.triggers import NotFound, trigger_run
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

COMMANDS = Counter("autoloader_commands_total", "Upstream commands applied", ["command_type"])


class Refused(LookupError):
    """The command names something its tenant does not have."""


@dataclass
class CommandHandler:
    sessions: async_sessionmaker[AsyncSession]
    dead_letters: DeadLetters

    async def handle(self, raw: bytes, key: bytes | None) -> Run | None:
        try:
            command = parse_command(raw)
        except ValidationError as error:
            await self.dead_letters.send(raw, key, f"invalid command: {error}")
            return None
        try:
            run = await retrying(lambda: self.apply(command), f"{command.command_type}")
        except Refused as error:
            await self.dead_letters.send(raw, key, f"{command.command_type} refused: {error}")
            return None
        except Exception as error:
            reason = f"{command.command_type} not applied: {type(error).__name__}: {error}"
            await self.dead_letters.send(raw, key, reason)
            return None
        COMMANDS.labels(command.command_type).inc()
        log.info(
            "%s from %s: run %s, %s",
            command.command_type,
            command.requested_by,
            run.id,
            run.status,
            extra={"ingestion_id": run.ingestion_id, "run_id": run.id},
        )
        return run

    async def apply(self, command: UpstreamCommand) -> Run:
        async with UnitOfWork(self.sessions) as uow:
            tenant_id = await _tenant_id(uow.session, command.tenant)
            ingestion_id = command.ingestion_id or await _ingestion_id(
                uow.session, tenant_id, command.ingestion_name or ""
            )
            backfill = command.backfill if isinstance(command, RequestBackfill) else None
            try:
                return await trigger_run(
                    uow,
                    tenant_id,
                    ingestion_id,
                    trigger=RunTrigger.BACKFILL if backfill else RunTrigger.UPSTREAM,
                    requested_by=f"upstream:{command.requested_by}",
                    idempotency_key=command.idempotency_key,
                    backfill=backfill,
                    record_refusal=True,
                )
            except NotFound as error:
                raise Refused(f"tenant {command.tenant!r}: {error}") from error


async def _tenant_id(session: AsyncSession, name: str) -> uuid.UUID:
    tenant_id = await session.scalar(select(Tenant.id).where(Tenant.name == name))
    if tenant_id is None:
        raise Refused(f"no tenant named {name!r}")
    return tenant_id


async def _ingestion_id(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> uuid.UUID:
    ingestion_id = await session.scalar(
        select(Ingestion.id).where(
            Ingestion.tenant_id == tenant_id,
            Ingestion.name == name,
            Ingestion.deleted_at.is_(None),
        )
    )
    if ingestion_id is None:
        raise Refused(f"the tenant has no ingestion named {name!r}")
    return ingestion_id
