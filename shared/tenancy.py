"""What a tenant may point its ingestions at.

- Tables: a tenant writes only into its own namespace, the database `t_<tenant>` of any
  catalog, and into the `catalog.database` namespaces an operator granted it.
- Buckets: the first ingestion on a bucket claims the whole bucket for its tenant. Another
  tenant may read it only under a prefix an operator granted it (`autoloader tenants
  grant`). S3 notifications reach only tenants with a claim covering the object's key.
- The warehouse bucket is nobody's source, and `local` sources need an operator's switch and
  a path under one of the allowed roots.

The API checks these on create, replace, patch and backfill; the processor checks the
destination again before it writes.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import uuid

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import SourceClaim, Tenant, TenantNamespace
from shared.settings import TenancySettings
from shared.spec import IngestionSpec, SourceSpec

NAMESPACE_PREFIX = "t_"
CLEAN_NAME = re.compile(r"^[a-z0-9_]{1,100}$")


class Forbidden(PermissionError):
    """A request reaches outside its tenant; ``field`` names the part of the body at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def own_database(tenant_name: str) -> str:
    """`t_<tenant>`; a name that is not already a lower-case identifier gets a hash suffix,
    so two tenants never share a database."""
    if CLEAN_NAME.match(tenant_name):
        return NAMESPACE_PREFIX + tenant_name
    cleaned = re.sub(r"[^a-z0-9_]", "_", tenant_name.lower())[:80]
    digest = hashlib.sha256(tenant_name.encode()).hexdigest()[:8]
    return f"{NAMESPACE_PREFIX}{cleaned}_{digest}"


async def granted_namespaces(session: AsyncSession, tenant_id: uuid.UUID) -> set[str]:
    rows = await session.scalars(
        select(TenantNamespace.namespace).where(TenantNamespace.tenant_id == tenant_id)
    )
    return set(rows)


async def check_table(session: AsyncSession, tenant: Tenant, qualified: str, field: str) -> None:
    """Refuse a `catalog.database.table` outside the tenant's namespaces."""
    catalog, database, _ = qualified.split(".")
    if database.lower() == own_database(tenant.name):
        return
    if f"{catalog}.{database}" in await granted_namespaces(session, tenant.id):
        return
    raise Forbidden(
        field,
        f"{catalog}.{database} is not a namespace of this tenant; write to the database "
        f"{own_database(tenant.name)!r} or ask an operator to grant {catalog}.{database}",
    )


def check_location(source: SourceSpec, settings: TenancySettings) -> None:
    """Refuse the warehouse bucket, and local sources unless turned on and under a root."""
    if source.type == "s3" and source.bucket == settings.warehouse_bucket:
        raise Forbidden("source.path", "the warehouse bucket cannot be a source")
    if source.type != "local":
        return
    if not settings.local_sources_enabled:
        raise Forbidden(
            "source.type",
            "local sources are turned off on this service "
            "(an operator sets AUTOLOADER_TENANCY_LOCAL_SOURCES_ENABLED)",
        )
    path = source.path.removeprefix("file://")
    if ".." in path.split("/") or not any(
        _under(path, root) for root in settings.local_source_roots
    ):
        raise Forbidden(
            "source.path", "a local source must lie under one of the allowed roots, without '..'"
        )


def _under(path: str, root: str) -> bool:
    root = posixpath.normpath(root)
    return posixpath.normpath(path) == root or path.startswith(root.rstrip("/") + "/")


async def claim_source(session: AsyncSession, tenant_id: uuid.UUID, source: SourceSpec) -> None:
    """Claim an unclaimed bucket whole for the tenant, or find its claim covering the prefix;
    refuse a bucket that another tenant claimed. Serialised per bucket until commit."""
    bucket = source.bucket
    if bucket is None:
        return
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"source-claim:{bucket}"},
    )
    claims = (
        await session.execute(
            select(SourceClaim.tenant_id, SourceClaim.prefix).where(SourceClaim.bucket == bucket)
        )
    ).all()
    if not claims:
        await session.execute(
            insert(SourceClaim)
            .values(bucket=bucket, prefix="", tenant_id=tenant_id, granted_by="first-use")
            .on_conflict_do_nothing()
        )
        return
    if any(t == tenant_id and source.prefix.startswith(p) for t, p in claims):
        return
    raise Forbidden(
        "source.path",
        f"bucket {bucket!r} belongs to another tenant; an operator can grant this tenant a "
        "prefix of it (autoloader tenants grant --source)",
    )


def destination_of(spec: IngestionSpec) -> str:
    """The ingestion's own table as `catalog.database.table`."""
    destination = spec.destination
    return f"{destination.catalog}.{destination.database}.{destination.table}"


async def check_spec(
    session: AsyncSession, tenant: Tenant, spec: IngestionSpec, settings: TenancySettings
) -> None:
    check_location(spec.source, settings)
    await check_table(session, tenant, destination_of(spec), "destination")
    await claim_source(session, tenant.id, spec.source)


async def claimants(session: AsyncSession, bucket: str, key: str) -> set[uuid.UUID]:
    """Tenants whose claims on the bucket cover the key: the only ones its events reach."""
    rows = await session.scalars(
        select(SourceClaim.tenant_id).where(
            SourceClaim.bucket == bucket,
            func.starts_with(key, SourceClaim.prefix),
        )
    )
    return set(rows)
