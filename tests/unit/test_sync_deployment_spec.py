"""The deployment scheduler-sync makes names the command the Prefect worker starts each flow
run with (Prefect's engine, without the workspace-preparing interpreter in front of it), and
reconcile brings deployments made without it up to date."""

from __future__ import annotations

import shlex
import sys
import uuid
from dataclasses import replace
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from autoloader_sync.prefect_gateway import DeploymentState, PrefectGateway
from autoloader_sync.settings import SyncSettings
from autoloader_sync.sync import Syncer, deployment_spec
from shared.models import Ingestion, IngestionStatus
from shared.settings import FlowRunSettings

pytestmark = pytest.mark.unit

ENGINE = "/opt/venv/bin/python -m prefect.engine"


def ingestion() -> Ingestion:
    return Ingestion(
        id=uuid.uuid4(),
        schedule_cron=None,
        schedule_timezone="UTC",
        source_type="s3",
        work_queue="default",
        status=IngestionStatus.ACTIVE,
    )


def state_of(spec_ingestion: Ingestion, **changes: object) -> DeploymentState:
    """What Prefect reports for a deployment made from the spec, with ``changes``."""
    spec = deployment_spec(spec_ingestion, "acme", FlowRunSettings(), ENGINE)
    state = DeploymentState(
        id=uuid.uuid4(),
        name=spec.name,
        cron=spec.cron,
        timezone=spec.timezone,
        tags=spec.tags,
        work_queue=spec.work_queue,
        paused=spec.paused,
        parameters=spec.parameters,
        job_variables=spec.job_variables,
    )
    return replace(state, **changes)  # type: ignore[arg-type]


def test_the_deployment_names_the_engine_command_next_to_the_flow_settings() -> None:
    spec = deployment_spec(ingestion(), "acme", FlowRunSettings(timeout_seconds=60), ENGINE)

    assert spec.job_variables["command"] == ENGINE
    assert spec.job_variables["env"]["AUTOLOADER_FLOW_TIMEOUT_SECONDS"] == "60"


def test_without_a_command_prefect_chooses_its_own() -> None:
    spec = deployment_spec(ingestion(), "acme", FlowRunSettings())

    assert "command" not in spec.job_variables


def test_the_default_command_is_this_interpreter_running_the_fork_servers_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AUTOLOADER_SYNC_FLOW_RUN_COMMAND", raising=False)
    assert shlex.split(SyncSettings().flow_run_command) == [
        sys.executable,
        "-m",
        "autoloader_discovery.forkclient",
    ]

    monkeypatch.setenv("AUTOLOADER_SYNC_FLOW_RUN_COMMAND", "")
    assert SyncSettings().flow_run_command == ""


def test_syncer_and_reconcile_build_the_same_spec() -> None:
    syncer = Syncer(
        sessions=async_sessionmaker(),
        prefect=cast(PrefectGateway, None),
        flow=FlowRunSettings(),
        flow_run_command=ENGINE,
    )
    row = ingestion()

    assert syncer.deployment_spec(row, "acme") == deployment_spec(
        row, "acme", FlowRunSettings(), ENGINE
    )


def test_a_deployment_whose_job_variables_differ_has_drifted() -> None:
    row = ingestion()
    spec = deployment_spec(row, "acme", FlowRunSettings(), ENGINE)
    env_only = {"env": spec.job_variables["env"]}

    assert state_of(row).matches(spec)
    assert not state_of(row, job_variables=env_only).matches(spec)  # made before the command
    assert not state_of(row, job_variables={}).matches(spec)
