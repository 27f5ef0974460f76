"""Fixtures for end-to-end tests: the running stack's API and Prefect, driven from outside."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.responses import DeploymentResponse
from prefect.exceptions import ObjectNotFound
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import DatabaseSettings
from tests.e2e import ledger as ledgers

ROOT = Path(__file__).resolve().parents[2]
API = os.environ.get("AUTOLOADER_API_URL", "http://127.0.0.1:8000")
LANDING = "autoloader-landing"  # the stack's source bucket, shared by the end-to-end tenants
FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


@pytest.fixture(autouse=True)
async def ledger(
    request: pytest.FixtureRequest, stack_env: dict[str, str]
) -> AsyncIterator[ledgers.Ledger]:
    """After the test, its ingestions' tables must agree with `file_state` file by file
    (see tests/e2e/ledger.py); then its scratch tables are dropped. Fresh connections at
    the end, because fault tests restart PostgreSQL and Spark Connect."""
    remote = stack_env.get("AUTOLOADER_SPARK_REMOTE")
    engine = create_async_engine(DatabaseSettings().url.get_secret_value())
    try:
        ledger = ledgers.Ledger(since=await ledgers.database_now(engine))
    except OSError as error:
        pytest.skip(f"the PostgreSQL of `make up` is not answering: {error}")
    finally:
        await engine.dispose()
    yield ledger
    if not remote:
        return
    engine = create_async_engine(DatabaseSettings().url.get_secret_value())
    try:
        passed = not request.node.stash.get(FAILED, False)
        problems = await ledgers.check(engine, remote, ledger.since) if passed else []
    finally:
        await engine.dispose()
        await asyncio.to_thread(ledgers.drop, remote, ledger.tables)
    assert not problems, "the tables disagree with file_state:\n" + "\n".join(problems[:20])


@pytest.fixture(scope="session")
def running_api(stack_env: dict[str, str]) -> str:
    try:
        httpx.get(f"{API}/health", timeout=5).raise_for_status()
    except httpx.HTTPError as error:
        pytest.skip(f"the API of `make up` is not serving at {API}: {error}")
    return API


@pytest.fixture
def tenant_name() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def tenant_headers(running_api: str, tenant_name: str) -> dict[str, str]:
    """A new tenant of the running stack, with its API key; like the dev tenant, it may
    write to the `default` database and read the landing bucket."""
    key = _cli("autoloader-api", "keys", "create", "--tenant", tenant_name)
    for grant in (["--namespace", "spark_catalog.default"], ["--source", f"s3://{LANDING}/"]):
        _cli("autoloader", "tenants", "grant", "--tenant", tenant_name, *grant)
    return {"Authorization": f"Bearer {key}"}


def _cli(*command: str) -> str:
    executable = str(Path(sys.executable).parent / command[0])
    result = subprocess.run(
        [executable, *command[1:]], capture_output=True, text=True, check=True, env=os.environ
    )
    return result.stdout.strip()


@pytest.fixture
async def api(running_api: str, tenant_headers: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running_api, headers=tenant_headers, timeout=30) as c:
        yield c


@pytest.fixture
async def prefect(prefect_settings: Any) -> AsyncIterator[PrefectClient]:
    async with PrefectClient(prefect_settings.api_url) as client:
        yield client


async def deployment_of(prefect: PrefectClient, ingestion_id: str) -> DeploymentResponse | None:
    try:
        return await prefect.read_deployment_by_name(f"run_ingestion/ingestion-{ingestion_id}")
    except ObjectNotFound:
        return None


async def eventually(
    probe: Callable[[], Any], accept: Callable[[Any], bool], within: float, what: str
) -> Any:
    """Poll ``probe`` until ``accept`` holds for its result; fail naming ``what``."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await probe()
        except (httpx.HTTPError, OSError) as error:
            last = error
        else:
            if accept(last):
                return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what} within {within}s; last seen: {last!r}")


def scheduled_ingestion(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"e2e-{uuid.uuid4().hex[:8]}",
        "source": {
            "type": "local",
            "path": "file:///tmp/autoloader-e2e/none",
            "file_pattern": "*.json",
        },
        "format": {"type": "json"},
        "destination": {"table": "e2e_orders"},
        "schedule": {"frequency": "daily", "time": "02:30", "timezone": "Europe/Berlin"},
    }
    body.update(overrides)
    return body
