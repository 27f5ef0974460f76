"""Repositories over one session. Every query that reads a tenant's data takes the tenant id."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import Event
from shared.models import ApiKey, FileState, Ingestion, OutboxEvent, Run, Tenant


async def _page(
    session: AsyncSession, query: Select[Any], limit: int, offset: int
) -> tuple[Sequence[Any], int]:
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = (await session.scalars(query.limit(limit).offset(offset))).all()
    return rows, int(total or 0)


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_or_create(self, name: str) -> Tenant:
        tenant = await self.session.scalar(select(Tenant).where(Tenant.name == name))
        if tenant is None:
            tenant = Tenant(id=uuid.uuid4(), name=name)
            self.session.add(tenant)
            await self.session.flush()
        return tenant

    async def by_key_hash(self, key_hash: str) -> Tenant | None:
        query = (
            select(Tenant)
            .join(ApiKey, ApiKey.tenant_id == Tenant.id)
            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )
        return await self.session.scalar(query)

    def add_key(self, tenant: Tenant, key_hash: str, prefix: str) -> ApiKey:
        key = ApiKey(id=uuid.uuid4(), tenant_id=tenant.id, key_hash=key_hash, prefix=prefix)
        self.session.add(key)
        return key

    async def keys(
        self,
        tenant_name: str | None = None,
        *,
        key_id: uuid.UUID | None = None,
        prefix: str | None = None,
    ) -> Sequence[tuple[ApiKey, str]]:
        """API keys with their tenant's name, oldest first, filtered by whichever is given."""
        query = (
            select(ApiKey, Tenant.name)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .order_by(ApiKey.created_at, ApiKey.id)
            # A revocation in this session updates rows, not the objects it already holds.
            .execution_options(populate_existing=True)
        )
        if tenant_name is not None:
            query = query.where(Tenant.name == tenant_name)
        if key_id is not None:
            query = query.where(ApiKey.id == key_id)
        if prefix is not None:
            query = query.where(ApiKey.prefix == prefix)
        return [(key, name) for key, name in await self.session.execute(query)]

    async def revoke_key(self, key_id: uuid.UUID) -> bool:
        """Revoke a key (a revoked key keeps its first revocation time); False if unknown."""
        revoked = await self.session.scalar(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))
            .returning(ApiKey.id)
        )
        return revoked is not None


class IngestionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, ingestion: Ingestion) -> None:
        self.session.add(ingestion)

    async def get(
        self, tenant_id: uuid.UUID, ingestion_id: uuid.UUID, *, for_update: bool = False
    ) -> Ingestion | None:
        query = select(Ingestion).where(
            Ingestion.id == ingestion_id,
            Ingestion.tenant_id == tenant_id,
            Ingestion.deleted_at.is_(None),
        )
        if for_update:
            # Every change to an ingestion locks its row first, so its outbox rows are
            # inserted in commit order and the relay can publish them in that order.
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def list(
        self,
        tenant_id: uuid.UUID,
        *,
        status: str | None,
        name: str | None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[Ingestion], int]:
        query = select(Ingestion).where(
            Ingestion.tenant_id == tenant_id, Ingestion.deleted_at.is_(None)
        )
        if status:
            query = query.where(Ingestion.status == status)
        if name:
            query = query.where(Ingestion.name.ilike(f"%{name}%"))
        return await _page(self.session, query.order_by(Ingestion.created_at), limit, offset)

    async def name_taken(
        self, tenant_id: uuid.UUID, name: str, except_id: uuid.UUID | None = None
    ) -> bool:
        query = select(Ingestion.id).where(
            Ingestion.tenant_id == tenant_id,
            Ingestion.name == name,
            Ingestion.deleted_at.is_(None),
        )
        if except_id is not None:
            query = query.where(Ingestion.id != except_id)
        return await self.session.scalar(query) is not None


class RunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, run: Run) -> None:
        self.session.add(run)

    async def get(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Run | None:
        return await self.session.scalar(
            select(Run).where(Run.id == run_id, Run.tenant_id == tenant_id)
        )

    async def by_idempotency_key(self, ingestion_id: uuid.UUID, key: str) -> Run | None:
        return await self.session.scalar(
            select(Run).where(Run.ingestion_id == ingestion_id, Run.idempotency_key == key)
        )

    async def list(
        self, ingestion_id: uuid.UUID, *, limit: int, offset: int
    ) -> tuple[Sequence[Run], int]:
        query = select(Run).where(Run.ingestion_id == ingestion_id).order_by(Run.created_at.desc())
        return await _page(self.session, query, limit, offset)

    async def file_counts(self, run_id: uuid.UUID) -> dict[str, int]:
        rows = await self.session.execute(
            select(FileState.status, func.count())
            .where(FileState.run_id == run_id)
            .group_by(FileState.status)
        )
        return {status: count for status, count in rows.all()}


class FileStateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list(
        self, ingestion_id: uuid.UUID, *, status: str | None, limit: int, offset: int
    ) -> tuple[Sequence[FileState], int]:
        query = select(FileState).where(FileState.ingestion_id == ingestion_id)
        if status:
            query = query.where(FileState.status == status)
        return await _page(self.session, query.order_by(FileState.id), limit, offset)


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, event: Event) -> None:
        self.session.add(
            OutboxEvent(
                topic=event.topic.name,
                key=event.key.decode(),
                event_type=getattr(event, "event_type", type(event).__name__),
                payload=event.model_dump(mode="json"),
            )
        )

    async def unsent_count(self) -> int:
        count = await self.session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sent_at.is_(None))
        )
        return int(count or 0)

    async def oldest_unsent_age_seconds(self) -> float | None:
        oldest = await self.session.scalar(
            select(func.extract("epoch", func.now() - func.min(OutboxEvent.created_at))).where(
                OutboxEvent.sent_at.is_(None)
            )
        )
        return None if oldest is None else float(oldest)
