"""`autoloader tenants`: what an operator grants a tenant beyond its own namespace and buckets.

  autoloader tenants show --tenant orders-team
  autoloader tenants grant --tenant orders-team --namespace spark_catalog.analytics
  autoloader tenants grant --tenant orders-team --source s3://shared-landing/orders/
  autoloader tenants revoke --tenant orders-team --source s3://shared-landing/orders/

A tenant always writes to its own database `t_<tenant>`; a granted namespace adds a
`catalog.database`. A granted source lets the tenant read that prefix of a bucket that
another tenant claimed; S3 notifications under it then reach the tenant too.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import create_engine, session_factory
from shared.models import SourceClaim, Tenant, TenantNamespace
from shared.settings import DatabaseSettings
from shared.spec import IDENTIFIER, S3_PATH
from shared.tenancy import own_database


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tenants = commands.add_parser(
        "tenants",
        help="a tenant's namespaces and source claims",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tenants.add_argument("action", choices=["show", "grant", "revoke"])
    tenants.add_argument("--tenant", required=True, help="tenant name")
    what = tenants.add_mutually_exclusive_group()
    what.add_argument("--namespace", help="catalog.database the tenant may write to")
    what.add_argument("--source", help="s3://bucket/prefix the tenant may read")
    tenants.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.action != "show" and not (args.namespace or args.source):
        print("autoloader tenants: grant and revoke need --namespace or --source", file=sys.stderr)
        return 2
    try:
        target = _parse(args.namespace, args.source)
    except ValueError as error:
        print(f"autoloader tenants: {error}", file=sys.stderr)
        return 2
    return asyncio.run(_apply(args.action, args.tenant, target))


def _parse(namespace: str | None, source: str | None) -> tuple[str, str, str] | None:
    """('namespace', catalog.database, '') or ('source', bucket, prefix)."""
    if namespace is not None:
        parts = namespace.split(".")
        if len(parts) != 2 or not all(IDENTIFIER.match(part) for part in parts):
            raise ValueError("--namespace must be catalog.database, each part an identifier")
        return "namespace", namespace, ""
    if source is not None:
        match = S3_PATH.match(source)
        if match is None:
            raise ValueError("--source must look like s3://bucket/ or s3://bucket/prefix/")
        return "source", match["bucket"], re.sub(r"^/", "", match["prefix"] or "")
    return None


async def _apply(action: str, tenant_name: str, target: tuple[str, str, str] | None) -> int:
    engine = create_engine(DatabaseSettings())
    try:
        async with session_factory(engine)() as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.name == tenant_name))
            if tenant is None:
                print(f"autoloader tenants: no tenant named {tenant_name!r}", file=sys.stderr)
                return 1
            if target is not None and action != "show":
                await _change(session, tenant, action, target)
                await session.commit()
            await _show(session, tenant)
            return 0
    finally:
        await engine.dispose()


async def _change(
    session: AsyncSession, tenant: Tenant, action: str, target: tuple[str, str, str]
) -> None:
    kind, name, prefix = target
    if kind == "namespace":
        model: type[TenantNamespace] | type[SourceClaim] = TenantNamespace
        keys = {"tenant_id": tenant.id, "namespace": name}
    else:
        model = SourceClaim
        keys = {"tenant_id": tenant.id, "bucket": name, "prefix": prefix}
    if action == "grant":
        values = keys if kind == "namespace" else {**keys, "granted_by": "operator"}
        await session.execute(insert(model).values(**values).on_conflict_do_nothing())
    else:
        conditions = [getattr(model, column) == value for column, value in keys.items()]
        await session.execute(delete(model).where(*conditions))


async def _show(session: AsyncSession, tenant: Tenant) -> None:
    print(f"tenant {tenant.name}: own namespace *.{own_database(tenant.name)}")
    namespaces = await session.scalars(
        select(TenantNamespace.namespace).where(TenantNamespace.tenant_id == tenant.id)
    )
    for namespace in sorted(namespaces):
        print(f"  namespace {namespace} (granted)")
    claims = await session.execute(
        select(SourceClaim.bucket, SourceClaim.prefix, SourceClaim.granted_by).where(
            SourceClaim.tenant_id == tenant.id
        )
    )
    for bucket, prefix, granted_by in sorted(claims.all()):
        print(f"  source s3://{bucket}/{prefix} ({granted_by})")
