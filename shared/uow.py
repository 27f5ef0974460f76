"""A unit of work: one session and transaction, its repositories, and the outbox.

`emit` adds an event to the outbox in the same transaction as the change it describes, so the
change and its event commit together or not at all.
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.events import Event
from shared.repositories import (
    FileStateRepository,
    IngestionRepository,
    OutboxRepository,
    RunRepository,
    TenantRepository,
)


class UnitOfWork:
    session: AsyncSession
    tenants: TenantRepository
    ingestions: IngestionRepository
    runs: RunRepository
    files: FileStateRepository
    outbox: OutboxRepository

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._sessions()
        self.tenants = TenantRepository(self.session)
        self.ingestions = IngestionRepository(self.session)
        self.runs = RunRepository(self.session)
        self.files = FileStateRepository(self.session)
        self.outbox = OutboxRepository(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is not None:
                await self.session.rollback()
        finally:
            await self.session.close()

    def emit(self, event: Event) -> None:
        self.outbox.add(event)

    async def commit(self) -> None:
        await self.session.commit()
