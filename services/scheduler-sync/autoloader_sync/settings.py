"""The scheduler-sync process's one settings object."""

from __future__ import annotations

import shlex
import sys

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import (
    CommandSettings,
    DatabaseSettings,
    FlowRunSettings,
    KafkaSettings,
    PrefectSettings,
    metrics_port,
)


def engine_command() -> str:
    """The flow-run client of the worker's fork server (which runs Prefect's engine, or runs it
    itself without one), run by this process's own interpreter."""
    return shlex.join([sys.executable, "-m", "autoloader_discovery.forkclient"])


class SyncSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_SYNC_")

    group_id: str = "scheduler-sync"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = metrics_port(9401)
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    reconcile_interval_seconds: float = 300.0
    # The run watchdog: how often it looks, how old a heartbeat means a dead flow run, how
    # many flow runs a run gets in all, and how long a run may wait for its first flow run.
    watchdog_interval_seconds: float = 10.0
    watchdog_stale_heartbeat_seconds: float = 45.0
    watchdog_max_flow_attempts: int = Field(default=3, ge=1)
    watchdog_queued_deadline_seconds: float = 60.0
    # An upstream command signed longer ago than this (or this far ahead) is refused; within
    # it, a replayed command finds its run by its idempotency key.
    command_max_age_seconds: float = Field(default=900.0, gt=0)
    # The command Prefect's process worker starts each flow run with, put in every deployment.
    # Named, the worker starts Prefect's engine directly; left empty, Prefect 3.8 first starts
    # an interpreter that prepares a workspace and then starts the engine in a second one,
    # about 1.5 s more per run (docs/performance.md). The default names this process's own
    # interpreter: the image's Python (or the dev stack's virtualenv), which the worker shares.
    flow_run_command: str = Field(default_factory=engine_command)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    flow: FlowRunSettings = Field(default_factory=FlowRunSettings)
    commands: CommandSettings = Field(default_factory=CommandSettings)
