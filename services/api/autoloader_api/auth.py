"""API keys: random bearer tokens, stored as SHA-256 hashes and mapped to one tenant."""

from __future__ import annotations

import hashlib
import secrets

from shared.models import Tenant
from shared.uow import UnitOfWork

PREFIX = "al_"


def hash_key(key: str) -> str:
    # The keys are 256-bit random tokens, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(uow: UnitOfWork, tenant_name: str) -> str:
    """Create the tenant if needed and a new key for it; return the key (shown only once)."""
    tenant = await uow.tenants.get_or_create(tenant_name)
    key = PREFIX + secrets.token_urlsafe(32)
    uow.tenants.add_key(tenant, hash_key(key), key[:10])
    await uow.commit()
    return key


async def tenant_for_key(uow: UnitOfWork, key: str) -> Tenant | None:
    return await uow.tenants.by_key_hash(hash_key(key))
