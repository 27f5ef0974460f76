"""Operator routes under /admin: API keys and health details, behind the admin token.

The token is AUTOLOADER_API_ADMIN_TOKEN. Without it the routes do not exist (404), so a
deployment that never set one exposes nothing; tenant API keys are never accepted here.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from autoloader_api.auth import KeyInfo, issue_key, list_keys, revoke_key
from autoloader_api.container import Container
from autoloader_api.deps import ContainerDep, UowDep
from autoloader_api.routes.operations import READY_TIMEOUT_SECONDS
from shared.preflight import OK, KafkaProbe, database_status
from shared.uow import UnitOfWork

admin_bearer = HTTPBearer(
    auto_error=False, scheme_name="AdminToken", description="AUTOLOADER_API_ADMIN_TOKEN"
)


def require_admin(
    container: ContainerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(admin_bearer)],
) -> None:
    expected = container.settings.admin_token
    if expected is None or not expected.get_secret_value():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    given = credentials.credentials if credentials is not None else ""
    # Constant time, so the token cannot be guessed a character at a time from response times.
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "admin token required: send `Authorization: Bearer <AUTOLOADER_API_ADMIN_TOKEN>`",
            headers={"WWW-Authenticate": "Bearer"},
        )


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


class KeyOut(BaseModel):
    id: uuid.UUID
    prefix: str = Field(description="The key's first characters, to recognise it by")
    tenant: str
    created_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, info: KeyInfo) -> KeyOut:
        return cls(
            id=info.id,
            prefix=info.prefix,
            tenant=info.tenant,
            created_at=info.created_at,
            revoked_at=info.revoked_at,
        )


class KeyCreated(KeyOut):
    key: str = Field(description="The API key itself; shown only in this response")


class KeyRequest(BaseModel):
    tenant: str = Field(min_length=1, max_length=100, description="Created if new")


@router.get("/keys", response_model=list[KeyOut])
async def get_keys(uow: UowDep, tenant: str | None = None) -> list[KeyOut]:
    """Every API key (or one tenant's), revoked ones included; never the keys themselves."""
    return [KeyOut.of(info) for info in await list_keys(uow, tenant)]


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
async def post_key(body: KeyRequest, uow: UowDep) -> KeyCreated:
    key, info = await issue_key(uow, body.tenant)
    return KeyCreated(**KeyOut.of(info).model_dump(), key=key)


@router.delete("/keys/{key_id}", response_model=KeyOut)
async def delete_key(key_id: uuid.UUID, uow: UowDep) -> KeyOut:
    """Revoke a key: its next request gets 401. Revoking it again changes nothing."""
    info = await revoke_key(uow, key_id)
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no API key {key_id}")
    return KeyOut.of(info)


def get_kafka_probe(request: Request) -> KafkaProbe:
    probe: KafkaProbe = request.app.state.kafka_probe
    return probe


@router.get("/health")
async def health(
    container: ContainerDep, kafka: Annotated[KafkaProbe, Depends(get_kafka_probe)]
) -> JSONResponse:
    """PostgreSQL and Kafka as status words (ok, unreachable, timeout, topics_missing) and the
    age of the oldest outbox row not yet on Kafka; 503 when either is not ok. What failed is
    in the API's log."""
    database = await database_status(container.engine, READY_TIMEOUT_SECONDS)
    body = {
        "status": "ok",
        "database": database,
        "kafka": await kafka.status(),
        "outbox_oldest_unsent_seconds": await _outbox_age(container) if database == OK else None,
    }
    healthy = body["database"] == OK and body["kafka"] == OK
    body["status"] = "ok" if healthy else "degraded"
    return JSONResponse(body, status_code=200 if healthy else 503)


async def _outbox_age(container: Container) -> float | None:
    async with UnitOfWork(container.sessions) as uow:
        return await uow.outbox.oldest_unsent_age_seconds()
