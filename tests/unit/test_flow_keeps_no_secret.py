"""Prefect keeps nothing secret of a discovery flow run: no task or flow result is persisted,
whatever PREFECT_RESULTS_PERSIST_BY_DEFAULT says, and the context the tasks pass along holds
ids and the spec only (the source's credentials are decrypted inside the listing task)."""

from __future__ import annotations

from dataclasses import fields

import pytest

from autoloader_discovery import flows
from autoloader_discovery.discovery import RunContext

pytestmark = pytest.mark.unit

TASKS = [
    flows.start_run_task,
    flows.discover_files_task,
    flows.replay_files_task,
    flows.publish_files_task,
]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_no_task_persists_its_result(task: object) -> None:
    assert getattr(task, "persist_result", None) is False
    retried = task.with_options(retries=3, retry_delay_seconds=1)  # type: ignore[attr-defined]
    assert retried.persist_result is False, "the flow's retry options keep it off"


def test_the_flow_persists_no_result() -> None:
    assert flows.run_ingestion.persist_result is False


def test_the_run_context_has_no_place_for_credentials() -> None:
    assert {f.name for f in fields(RunContext)} == {
        "run_id",
        "ingestion_id",
        "tenant_id",
        "spec",
        "trigger",
        "parameters",
    }
