"""API keys: listed and revoked by the CLI and by the admin routes; a revoked key fails on its
very next request; the admin routes take only the admin token, and do not exist without one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_api.app import create_app
from autoloader_api.auth import create_key, hash_key
from autoloader_api.settings import ApiSettings, RelaySettings
from devstack.layout import Addresses
from shared.uow import UnitOfWork
from tests.integration.api.conftest import NewTenant

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "autoloader-api")
ADMIN_TOKEN = f"admin-{uuid.uuid4().hex}"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def admin_client(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with an admin token set (and no relay of its own: `client` runs one)."""
    settings = api_settings.model_copy(
        update={"admin_token": SecretStr(ADMIN_TOKEN), "relay": RelaySettings(enabled=False)}
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def cli(
    api_settings: ApiSettings, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`autoloader-api ARGS` against the tests' database."""
    environment = {
        **os.environ,
        "AUTOLOADER_DATABASE_URL": api_settings.database.url.get_secret_value(),
        **env,
    }
    return await asyncio.to_thread(
        subprocess.run, [CLI, *args], capture_output=True, text=True, env=environment, timeout=60
    )


async def tenant_with_keys(
    sessions: async_sessionmaker[AsyncSession], count: int
) -> tuple[str, list[str]]:
    name = f"keys-{uuid.uuid4().hex[:8]}"
    async with UnitOfWork(sessions) as uow:
        keys = [await create_key(uow, name) for _ in range(count)]
    return name, keys


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_admin_route_creates_lists_and_revokes_and_the_key_fails_on_its_next_request(
    admin_client: httpx.AsyncClient,
) -> None:
    tenant = f"admin-{uuid.uuid4().hex[:8]}"
    created = await admin_client.post("/admin/keys", json={"tenant": tenant}, headers=ADMIN)
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["id"]
    assert key.startswith("al_") and created.json()["prefix"] == key[:10]
    assert (await admin_client.get("/api/v1/ingestions", headers=bearer(key))).status_code == 200

    listed = await admin_client.get("/admin/keys", params={"tenant": tenant}, headers=ADMIN)
    assert listed.status_code == 200
    assert [(k["id"], k["tenant"], k["revoked_at"]) for k in listed.json()] == [
        (key_id, tenant, None)
    ]
    assert key not in listed.text and hash_key(key) not in listed.text

    revoked = await admin_client.delete(f"/admin/keys/{key_id}", headers=ADMIN)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    # The very next request, on the same process: nothing cached the key's tenant.
    after = await admin_client.get("/api/v1/ingestions", headers=bearer(key))
    assert after.status_code == 401, after.text

    again = await admin_client.delete(f"/admin/keys/{key_id}", headers=ADMIN)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    unknown = await admin_client.delete(f"/admin/keys/{uuid.uuid4()}", headers=ADMIN)
    assert unknown.status_code == 404


async def test_cli_lists_without_the_key_and_revokes_by_prefix_or_id(
    api_settings: ApiSettings,
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant, (first, second) = await tenant_with_keys(sessions, 2)
    for key in (first, second):
        assert (await client.get("/api/v1/ingestions", headers=bearer(key))).status_code == 200

    listed = await cli(api_settings, "keys", "list", "--tenant", tenant)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert sorted((row[1], row[2], row[-1]) for row in rows) == sorted(
        [(first[:10], tenant, "-"), (second[:10], tenant, "-")]
    )
    for key in (first, second):
        assert key not in listed.stdout and hash_key(key) not in listed.stdout

    by_prefix = await cli(api_settings, "keys", "revoke", first[:10])
    assert by_prefix.returncode == 0, by_prefix.stderr
    assert (await client.get("/api/v1/ingestions", headers=bearer(first))).status_code == 401
    assert (await client.get("/api/v1/ingestions", headers=bearer(second))).status_code == 200

    second_id = next(row[0] for row in rows if row[1] == second[:10])
    by_id = await cli(api_settings, "keys", "revoke", second_id)
    assert by_id.returncode == 0, by_id.stderr
    assert (await client.get("/api/v1/ingestions", headers=bearer(second))).status_code == 401

    relisted = await cli(api_settings, "keys", "list", "--tenant", tenant)
    assert all(line.split()[-1] != "-" for line in relisted.stdout.splitlines()[1:])
    unknown = await cli(api_settings, "keys", "revoke", "al_nothing")
    assert unknown.returncode == 1 and "no API key" in unknown.stderr


async def test_admin_routes_refuse_tenant_keys_and_wrong_tokens(
    admin_client: httpx.AsyncClient, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    mine = (await admin_client.get("/admin/keys", headers=ADMIN)).json()
    own_key_id = next(
        k["id"] for k in mine if k["prefix"] == tenant["Authorization"].split()[1][:10]
    )
    attempts = {
        "tenant key": tenant,
        "wrong token": {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
        "no header": {},
    }
    for what, headers in attempts.items():
        for method, path in [
            ("GET", "/admin/keys"),
            ("POST", "/admin/keys"),
            ("DELETE", f"/admin/keys/{own_key_id}"),
            ("GET", "/admin/health"),
        ]:
            body = {"tenant": "intruder"} if method == "POST" else None
            response = await admin_client.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, f"{what} {method} {path}: {response.text}"
    # The tenant's DELETE on its own key did nothing.
    assert (await admin_client.get("/api/v1/ingestions", headers=tenant)).status_code == 200


async def test_admin_routes_do_not_exist_without_an_admin_token(
    client: httpx.AsyncClient, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    for headers in ({}, tenant, {"Authorization": "Bearer anything"}):
        for method, path in [
            ("GET", "/admin/keys"),
            ("POST", "/admin/keys"),
            ("DELETE", f"/admin/keys/{uuid.uuid4()}"),
            ("GET", "/admin/health"),
        ]:
            response = await client.request(method, path, headers=headers)
            assert response.status_code == 404, f"{method} {path}: {response.text}"


async def test_cli_with_invalid_settings_prints_the_setting_and_exits_2(
    api_settings: ApiSettings,
) -> None:
    result = await cli(api_settings, "keys", "list", AUTOLOADER_API_PORT="not-a-port")
    assert result.returncode == 2
    assert result.stderr.startswith("autoloader-api: invalid settings:"), result.stderr
    assert "port" in result.stderr and "Traceback" not in result.stderr


def test_keys_create_works_as_the_readme_types_it_in_a_new_shell(stack_env: dict[str, str]) -> None:
    """`autoloader-api keys create --tenant x` right after `make up`, in a shell that has set
    nothing: the script finds the checkout's `.local/stack.env`, and the key it prints opens
    the running stack's API."""
    shell = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    tenant = f"it-shell-{uuid.uuid4().hex[:8]}"

    created = subprocess.run(
        [CLI, "keys", "create", "--tenant", tenant],
        capture_output=True,
        text=True,
        env=shell,
        cwd="/",
        timeout=60,
    )

    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    a = Addresses()
    listed = httpx.get(
        f"http://{a.host}:{a.api_port}/api/v1/ingestions",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert listed.status_code == 200, listed.text
    assert listed.json()["total"] == 0  # a new tenant's own, empty list
