"""FastAPI dependencies: the container, a unit of work, and the caller's tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from autoloader_api.auth import tenant_for_key
from autoloader_api.container import Container
from shared.crypto import CredentialCipher
from shared.models import Tenant
from shared.settings import TenancySettings
from shared.uow import UnitOfWork

bearer = HTTPBearer(auto_error=False, description="An API key from `autoloader-api keys create`")


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_uow(container: ContainerDep) -> AsyncIterator[UnitOfWork]:
    async with UnitOfWork(container.sessions) as uow:
        yield uow


UowDep = Annotated[UnitOfWork, Depends(get_uow)]


def get_cipher(container: ContainerDep) -> CredentialCipher:
    return container.cipher


CipherDep = Annotated[CredentialCipher, Depends(get_cipher)]


def get_tenancy(container: ContainerDep) -> TenancySettings:
    return container.settings.tenancy


TenancyDep = Annotated[TenancySettings, Depends(get_tenancy)]


async def get_tenant(
    uow: UowDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Tenant:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    tenant = await tenant_for_key(uow, credentials.credentials)
    if tenant is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return tenant


TenantDep = Annotated[Tenant, Depends(get_tenant)]
