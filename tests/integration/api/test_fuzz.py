"""schemathesis against a real API server: requests generated from the OpenAPI spec for every
operation, bounded, and none may get a server error (5xx).

The server runs `autoloader-api serve` on the API tests' own database with its relay off, so
what the generated requests create stays in that database: no event reaches Kafka, Prefect or
the processors.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from autoloader_api.settings import ApiSettings
from tests.integration.api.conftest import NewTenant

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
EXAMPLES_PER_OPERATION = 25
SEED = 20261123  # the same requests every run; change it to explore others
OPERATIONS = 19  # in the OpenAPI spec


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def api_server(api_settings: ApiSettings, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "AUTOLOADER_DATABASE_URL": api_settings.database.url.get_secret_value(),
        "AUTOLOADER_CREDENTIALS_KEY": api_settings.credentials.key.get_secret_value(),
        "AUTOLOADER_API_PORT": str(port),
        "AUTOLOADER_RELAY_ENABLED": "false",
    }
    log = (tmp_path / "api.log").open("w")
    server = subprocess.Popen([str(BIN / "autoloader-api"), "serve"], env=env, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_live(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


def _wait_live(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, f"autoloader-api serve exited with {server.returncode}"
        try:
            if httpx.get(f"{url}/livez", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("autoloader-api serve did not answer /livez within 60 s")


async def test_no_generated_request_gets_a_server_error(
    api_server: str, new_tenant: NewTenant, tmp_path: Path
) -> None:
    schemathesis = shutil.which("schemathesis", path=str(BIN))
    assert schemathesis, "schemathesis is a dev dependency: `make venv` installs it"
    headers = await new_tenant()
    command = [
        schemathesis,
        "--no-color",
        "run",
        f"{api_server}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--header",
        f"Authorization: {headers['Authorization']}",
        "--continue-on-failure",
    ]

    result = await asyncio.to_thread(
        # In a scratch directory: schemathesis keeps a cache (.schemathesis/) where it runs.
        subprocess.run,
        command,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )

    report = result.stdout[-8000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    counts = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert counts is not None, report
    generated, passed = map(int, counts.groups())
    assert generated == passed >= OPERATIONS, report  # requests were sent, to every operation
