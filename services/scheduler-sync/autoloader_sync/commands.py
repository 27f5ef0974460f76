"""Applying one upstream command of `autoloader.commands`.

A command signed with its tenant's key (shared.command_signing) for a known ingestion of that
tenant becomes a run, recorded exactly as the REST API records one (run row and event in one
commit, then scheduler-sync starts its flow run). A command for a paused ingestion is kept as
a failed run with the reason. A command that does not parse, is unsigned, is not signed with
its tenant's key within the window, or names a tenant or ingestion that does not exist, goes
to the DLQ with the reason and creates nothing; so does every command while the service has
no signing secret.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import Counter
from pydantic import SecretStr, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.command_signing import Unverified, tenant_key, verify
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
    signing_secret: SecretStr | None
    max_age_seconds: float

    async def handle(
        self, raw: bytes, key: bytes | None, headers: Iterable[tuple[str, bytes]]
    ) -> Run | None:
        secret = self.signing_secret.get_secret_value() if self.signing_secret else ""
        if not secret:
            reason = "command not applied: AUTOLOADER_COMMANDS_SIGNING_SECRET is not set"
            await self.dead_letters.send(raw, key, reason)
            return None
        try:
            command = parse_command(raw)
        except ValidationError as error:
            await self.dead_letters.send(raw, key, f"invalid command: {error}")
            return None
        try:
            self._verify(command, raw, headers, secret)
        except Unverified as error:
            reason = f"{command.command_type} not authenticated for tenant {command.tenant!r}"
            await self.dead_letters.send(raw, key, f"{reason}: {error}")
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

    def _verify(
        self,
        command: UpstreamCommand,
        raw: bytes,
        headers: Iterable[tuple[str, bytes]],
        secret: str,
    ) -> None:
        """The key is the one of the tenant the command names, so only that tenant's key
        signs for it."""
        verify(
            raw,
            headers,
            tenant_key(secret, command.tenant),
            now=time.time(),
            max_age_seconds=self.max_age_seconds,
        )

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
