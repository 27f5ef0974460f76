"""A failed run shows its tenant a classified reason and a ref; the full text is in the flow
run's log under the same ref, and never in the run. The refused credentials' secrets are in no
log, and nowhere in Prefect."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    LogFilter,
    LogFilterFlowRunId,
)

from tests.e2e.conftest import deployment_of, eventually
from tests.e2e.ledger import Ledger
from tests.e2e.test_ingestion_pipeline import ingestion, put_json_files, run_and_wait
from tests.e2e.test_no_secrets_leak import LOGS, fresh_credentials, search_files, search_prefect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def table(ledger: Ledger) -> str:
    return ledger.table("e2e")


async def test_a_run_refused_by_the_store_shows_the_reason_and_a_ref_logged_in_full(
    api: httpx.AsyncClient,
    s3: Any,
    table: str,
    prefect: PrefectClient,
    stack_env: dict[str, str],
) -> None:
    prefix = f"e2e/{table}"
    put_json_files(s3, prefix, 0, 1)
    credentials = fresh_credentials(stack_env).given
    token = credentials["aws_session_token"]
    credentials["aws_session_token"] = token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
    body = ingestion(prefix, table)
    body["source"]["credentials"] = credentials
    created = await api.post("/api/v1/ingestions", json=body)
    assert created.status_code == 201, created.text
    ingestion_id = created.json()["id"]

    run = await run_and_wait(api, ingestion_id)

    assert run["status"] == "failed", run
    shown = re.fullmatch(
        r"discovery failed: source access denied \(ref ([0-9a-f]{8})\)", run["error"]
    )
    assert shown is not None, run["error"]
    messages = await eventually(
        lambda: flow_run_messages(prefect, ingestion_id),
        lambda found: any(f"ref {shown[1]}" in m for m in found),
        30,
        f"no log line of the flow runs carries ref {shown[1]}",
    )
    [logged] = [m for m in messages if f"ref {shown[1]}" in m]
    assert "ClientError" in logged and "when calling the ListObjectsV2 operation" in logged
    # Failures log full texts: still no secret of the refused credentials anywhere.
    hunted = {name: credentials[name] for name in ("aws_secret_access_key", "aws_session_token")}
    found = search_files(LOGS, hunted, ingestion_id, "the stack's logs")
    found += await search_prefect(prefect, ingestion_id, hunted)
    assert not found, "credentials leaked:\n" + "\n".join(found)


async def flow_run_messages(prefect: PrefectClient, ingestion_id: str) -> list[str]:
    deployment = await deployment_of(prefect, ingestion_id)
    if deployment is None:
        return []
    runs = await prefect.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
    )
    ids = [run.id for run in runs]
    logs = await prefect.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
    return [entry.message for entry in logs]
