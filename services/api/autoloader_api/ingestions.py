"""Use cases of the ingestion API. Each one changes state and emits its event in one commit."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import json_merge_patch

from autoloader_api.schemas import IngestionOut
from shared.crypto import CredentialCipher, mask
from shared.events import (
    IngestionCreated,
    IngestionDeleted,
    IngestionPaused,
    IngestionResumed,
    IngestionSnapshot,
    IngestionUpdated,
)
from shared.models import Ingestion, IngestionStatus, Tenant
from shared.settings import TenancySettings
from shared.spec import IngestionSpec
from shared.tenancy import check_spec
from shared.triggers import Conflict, NotFound, locked_ingestion
from shared.uow import UnitOfWork


def snapshot(ingestion: Ingestion) -> IngestionSnapshot:
    return IngestionSnapshot(
        name=ingestion.name,
        status=ingestion.status,
        source_type=ingestion.source_type,
        schedule_cron=ingestion.schedule_cron,
        schedule_timezone=ingestion.schedule_timezone,
        work_queue=ingestion.work_queue,
        version=ingestion.version,
    )


SECRET_FIELDS = frozenset({"aws_secret_access_key", "aws_session_token"})


def masked(credentials: dict[str, Any]) -> dict[str, Any]:
    """Secrets as ****, the access key id shortened to its first characters, the rest shown."""
    shown: dict[str, Any] = {}
    for name, value in credentials.items():
        if value is None:
            continue
        if name in SECRET_FIELDS:
            shown[name] = "****"
        elif name == "aws_access_key_id":
            shown[name] = mask(value)
        else:
            shown[name] = value
    return shown


def to_out(ingestion: Ingestion, cipher: CredentialCipher) -> IngestionOut:
    spec = dict(ingestion.spec)
    if ingestion.credentials is not None:
        spec["source"] = {
            **spec["source"],
            "credentials": masked(cipher.decrypt(ingestion.credentials)),
        }
    return IngestionOut(
        id=ingestion.id,
        name=ingestion.name,
        status=ingestion.status,
        spec=spec,
        schedule_cron=ingestion.schedule_cron,
        schedule_timezone=ingestion.schedule_timezone,
        work_queue=ingestion.work_queue,
        prefect_deployment_id=ingestion.prefect_deployment_id,
        sync_status=ingestion.sync_status,
        sync_error=ingestion.sync_error,
        last_synced_at=ingestion.last_synced_at,
        created_at=ingestion.created_at,
        updated_at=ingestion.updated_at,
    )


def _apply(ingestion: Ingestion, spec: IngestionSpec, cipher: CredentialCipher) -> None:
    ingestion.name = spec.name
    ingestion.spec = spec.stored()
    ingestion.source_type = spec.source.type
    ingestion.source_bucket = spec.source.bucket
    ingestion.schedule_cron, ingestion.schedule_timezone = spec.listing_cron() or (None, None)
    ingestion.work_queue = spec.execution.work_queue
    if spec.source.credentials is not None:
        ingestion.credentials = cipher.encrypt(spec.source.credentials.revealed())
    elif spec.source.type == "local":
        ingestion.credentials = None


async def _load(uow: UnitOfWork, tenant: Tenant, ingestion_id: uuid.UUID) -> Ingestion:
    return await locked_ingestion(uow, tenant.id, ingestion_id)


async def _ensure_name_free(
    uow: UnitOfWork, tenant: Tenant, name: str, except_id: uuid.UUID | None = None
) -> None:
    if await uow.ingestions.name_taken(tenant.id, name, except_id):
        raise Conflict(f"an ingestion named {name!r} already exists")


async def create(
    uow: UnitOfWork,
    tenant: Tenant,
    spec: IngestionSpec,
    cipher: CredentialCipher,
    tenancy: TenancySettings,
) -> Ingestion:
    await _ensure_name_free(uow, tenant, spec.name)
    await check_spec(uow.session, tenant, spec, tenancy)
    ingestion = Ingestion(id=uuid.uuid4(), tenant_id=tenant.id, status=IngestionStatus.ACTIVE)
    ingestion.version = 1
    _apply(ingestion, spec, cipher)
    uow.ingestions.add(ingestion)
    uow.emit(
        IngestionCreated(
            tenant_id=tenant.id, ingestion_id=ingestion.id, ingestion=snapshot(ingestion)
        )
    )
    await uow.commit()
    return ingestion


async def replace(
    uow: UnitOfWork,
    tenant: Tenant,
    ingestion_id: uuid.UUID,
    spec: IngestionSpec,
    cipher: CredentialCipher,
    tenancy: TenancySettings,
) -> Ingestion:
    ingestion = await _load(uow, tenant, ingestion_id)
    await _ensure_name_free(uow, tenant, spec.name, except_id=ingestion.id)
    await check_spec(uow.session, tenant, spec, tenancy)
    before = dict(ingestion.spec)
    _apply(ingestion, spec, cipher)
    changed = sorted(
        key
        for key in set(before) | set(ingestion.spec)
        if before.get(key) != ingestion.spec.get(key)
    )
    if spec.source.credentials is not None:
        changed = sorted({*changed, "source"})
    ingestion.version += 1
    uow.emit(
        IngestionUpdated(
            tenant_id=tenant.id,
            ingestion_id=ingestion.id,
            ingestion=snapshot(ingestion),
            changed=changed,
        )
    )
    await uow.commit()
    return ingestion


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch (objects merge, null removes, anything else replaces), on a
    copy: the library merges into its first argument."""
    merged: dict[str, Any] = json_merge_patch.merge(copy.deepcopy(target), patch)
    return merged


async def patch(
    uow: UnitOfWork,
    tenant: Tenant,
    ingestion_id: uuid.UUID,
    changes: dict[str, Any],
    cipher: CredentialCipher,
    tenancy: TenancySettings,
) -> Ingestion:
    ingestion = await uow.ingestions.get(tenant.id, ingestion_id)
    if ingestion is None:
        raise NotFound(f"ingestion {ingestion_id} not found")
    spec = IngestionSpec.model_validate(merge_patch(ingestion.spec, changes))
    return await replace(uow, tenant, ingestion_id, spec, cipher, tenancy)


async def delete(uow: UnitOfWork, tenant: Tenant, ingestion_id: uuid.UUID) -> None:
    ingestion = await _load(uow, tenant, ingestion_id)
    ingestion.deleted_at = datetime.now(UTC)
    ingestion.version += 1
    uow.emit(IngestionDeleted(tenant_id=tenant.id, ingestion_id=ingestion.id))
    await uow.commit()


async def set_paused(
    uow: UnitOfWork, tenant: Tenant, ingestion_id: uuid.UUID, paused: bool
) -> Ingestion:
    ingestion = await _load(uow, tenant, ingestion_id)
    wanted = IngestionStatus.PAUSED if paused else IngestionStatus.ACTIVE
    if ingestion.status != wanted:
        ingestion.status = wanted
        ingestion.version += 1
        event = IngestionPaused if paused else IngestionResumed
        uow.emit(event(tenant_id=tenant.id, ingestion_id=ingestion.id))
    await uow.commit()
    return ingestion
