"""API keys: random bearer tokens, stored as SHA-256 hashes and mapped to one tenant.

Every request looks its key up in the database, so a revocation holds from the next request on.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.models import ApiKey, Tenant
from shared.uow import UnitOfWork

PREFIX = "al_"
SHOWN_PREFIX_LENGTH = 10  # "al_" and 7 characters: enough to tell keys apart, useless to guess


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of a key: never the key itself, nor its hash."""

    id: uuid.UUID
    prefix: str
    tenant: str
    created_at: datetime | None
    revoked_at: datetime | None


class AmbiguousKey(Exception):
    """A prefix that more than one key starts with."""


def hash_key(key: str) -> str:
    # The keys are 256-bit random tokens, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def _info(key: ApiKey, tenant: str) -> KeyInfo:
    return KeyInfo(key.id, key.prefix, tenant, key.created_at, key.revoked_at)


async def issue_key(uow: UnitOfWork, tenant_name: str) -> tuple[str, KeyInfo]:
    """Create the tenant if needed and a new key for it; return the key (shown only once)."""
    tenant = await uow.tenants.get_or_create(tenant_name)
    key = PREFIX + secrets.token_urlsafe(32)
    row = uow.tenants.add_key(tenant, hash_key(key), key[:SHOWN_PREFIX_LENGTH])
    await uow.commit()
    [(stored, name)] = await uow.tenants.keys(key_id=row.id)
    return key, _info(stored, name)


async def create_key(uow: UnitOfWork, tenant_name: str) -> str:
    key, _ = await issue_key(uow, tenant_name)
    return key


async def list_keys(uow: UnitOfWork, tenant_name: str | None = None) -> list[KeyInfo]:
    return [_info(key, name) for key, name in await uow.tenants.keys(tenant_name)]


async def find_key(uow: UnitOfWork, prefix_or_id: str) -> KeyInfo | None:
    """The key with this id, or the one key with this shown prefix."""
    try:
        rows = await uow.tenants.keys(key_id=uuid.UUID(prefix_or_id))
    except ValueError:
        rows = await uow.tenants.keys(prefix=prefix_or_id)
    if len(rows) > 1:
        raise AmbiguousKey(f"{len(rows)} keys have the prefix {prefix_or_id!r}; give the key's id")
    return _info(*rows[0]) if rows else None


async def revoke_key(uow: UnitOfWork, key_id: uuid.UUID) -> KeyInfo | None:
    """Revoke the key; its next request gets 401. None if there is no such key."""
    if not await uow.tenants.revoke_key(key_id):
        return None
    await uow.commit()
    [(key, name)] = await uow.tenants.keys(key_id=key_id)
    return _info(key, name)


async def tenant_for_key(uow: UnitOfWork, key: str) -> Tenant | None:
    return await uow.tenants.by_key_hash(hash_key(key))
