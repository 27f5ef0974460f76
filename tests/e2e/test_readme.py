"""The README's commands, run as written from a new shell against the stack of `make up`.

Each block is taken from README.md itself, so an edit that breaks a command breaks this test.
The shell starts without any AUTOLOADER_* or PREFECT_* variable, as a new terminal would; only
the README's placeholders (`<id>`, `ID`) are filled in. Not run here: `make up` and `make test`
(this is `make test`), the S3 notification example (it needs the AWS CLI), and `pyspark`
(an interactive shell).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT, eventually

pytestmark = pytest.mark.e2e

NAME = "orders"  # the README's example ingestion, of the development tenant
FINISHED = {"success", "partial", "failed"}


def _bash_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def _block(marker: str) -> str:
    (block,) = (block for block in _bash_blocks() if marker in block)
    return block


def _run_in_new_shell(script: str) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AUTOLOADER_", "PREFECT_"))
    }
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{script}\nexited {result.returncode}:\n{result.stderr}"
    return result


async def _new_shell(script: str) -> subprocess.CompletedProcess[str]:
    """Run a script in bash, in the checkout, with no setting of the stack in the environment."""
    return await asyncio.to_thread(_run_in_new_shell, script)


async def _delete_orders(api: httpx.AsyncClient) -> None:
    """The README creates `orders`: delete one left by a person or an earlier run."""
    listed = (await api.get("/api/v1/ingestions", params={"name": NAME})).raise_for_status()
    for ingestion in listed.json()["items"]:
        if ingestion["name"] == NAME:
            (await api.delete(f"/api/v1/ingestions/{ingestion['id']}")).raise_for_status()


@pytest.fixture
async def dev_api(running_api: str) -> AsyncIterator[httpx.AsyncClient]:
    """The development tenant's API, without an ingestion named `orders` before and after."""
    key_file = Path(ROOT) / ".local" / "dev-api-key"
    if not key_file.exists():
        pytest.skip("no development API key: run `make up`, which creates one")
    headers = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
    async with httpx.AsyncClient(base_url=running_api, headers=headers, timeout=30) as api:
        await _delete_orders(api)
        yield api
        await _delete_orders(api)


async def _finished_runs(api: httpx.AsyncClient, ingestion_id: str, count: int) -> list[Any]:
    async def runs() -> list[Any]:
        answer = await api.get(f"/api/v1/ingestions/{ingestion_id}/runs")
        return list(answer.raise_for_status().json()["items"])

    return list(
        await eventually(
            runs,
            lambda found: len(found) >= count and all(run["status"] in FINISHED for run in found),
            within=120,
            what=f"{count} finished runs of the README's ingestion",
        )
    )


async def test_the_readmes_commands_work_as_written_in_a_new_shell(
    dev_api: httpx.AsyncClient,
) -> None:
    api = dev_api
    create, run = _block(f'"name": "{NAME}"').rsplit("curl ", 1)
    key_line = create.split("\n")[0]  # KEY=$(cat .local/dev-api-key)

    created = json.loads((await _new_shell(create)).stdout)
    assert created["name"] == NAME, created
    ingestion_id = created["id"]
    started = await _new_shell(f"{key_line}\ncurl {run.replace('<id>', ingestion_id)}")
    assert json.loads(started.stdout)["status"] == "queued", started.stdout

    (manual,) = await _finished_runs(api, ingestion_id, 1)
    assert (manual["id"], manual["trigger"], manual["status"]) == (
        json.loads(started.stdout)["run_id"],
        "manual",
        "success",
    )

    await _new_shell(_block("signing-key"))
    runs = await _finished_runs(api, ingestion_id, 2)
    (upstream,) = (run for run in runs if run["trigger"] == "upstream")
    assert (upstream["status"], upstream["requested_by"]) == ("success", "upstream:nightly-etl")

    backfill = _block("autoloader backfill").split("\n")[0].removesuffix("\\").strip()
    backfilled = await _new_shell(backfill.replace("<id>", ingestion_id))
    assert "success" in backfilled.stdout + backfilled.stderr

    shell = _block("topics list").replace(" ID ", f" {ingestion_id} ")
    shell = "\n".join(line for line in shell.split("\n") if "pyspark" not in line)
    answered = (await _new_shell(shell)).stdout
    assert "autoloader.files" in answered  # topics list
    assert f"ingestion {NAME} ({ingestion_id})" in answered  # status
    assert "  pending      0 files, 0 bytes" in answered
    assert "  current run  none" in answered
