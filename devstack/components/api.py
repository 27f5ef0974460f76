"""The Autoloader REST API, started from the project's own console script, and the
development tenant whose API key `make up` prints."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from devstack import proc
from devstack.component import Component, Step
from devstack.layout import BUCKETS
from devstack.stack_env import stack_env

DEV_TENANT = "dev"
DEV_SOURCE = f"s3://{BUCKETS[0]}/"


class ProjectService(Component):
    """One of Autoloader's own services: restarted by every `make up`, since its code changes
    between runs, with the stack's environment."""

    argv: tuple[str, ...]

    def ensure_up(self) -> bool:
        self.stop()
        return super().ensure_up()

    def env(self) -> dict[str, str]:
        return stack_env(self.addresses)

    def start(self) -> int:
        command = [str(self.layout.venv_bin / self.argv[0]), *self.argv[1:]]
        return proc.spawn(self.layout, self.name, command, env=self.env())


class Api(ProjectService):
    name = "api"
    argv = ("autoloader-api", "serve")
    start_timeout = 60.0

    @property
    def url(self) -> str:
        return f"http://{self.addresses.host}:{self.addresses.api_port}"

    @property
    def address(self) -> str:
        return f"{self.url}, {self.url}/metrics"

    def healthy(self) -> bool:
        try:
            # Ready, like a Kubernetes readiness probe: serving, and its database answers.
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=15) as response:
                return bool(json.loads(response.read())["status"] == "ready")
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            return False

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "AUTOLOADER_API_HOST": self.addresses.host,
            "AUTOLOADER_API_PORT": str(self.addresses.api_port),
        }


class ConsumerService(ProjectService):
    """A Kafka consumer of the project's: healthy once its consumer group has a member. It
    serves its metrics on a port of its own (AUTOLOADER_<SERVICE>_METRICS_PORT)."""

    group: str
    env_prefix: str  # of the service's settings
    start_timeout = 90.0

    @property
    def metrics_port(self) -> int:
        raise NotImplementedError

    @property
    def address(self) -> str:
        metrics = f"http://{self.addresses.host}:{self.metrics_port}/metrics"
        return f"group '{self.group}', {metrics}"

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            f"{self.env_prefix}METRICS_HOST": self.addresses.host,
            f"{self.env_prefix}METRICS_PORT": str(self.metrics_port),
        }

    def healthy(self) -> bool:
        if self.pid() is None:
            return False
        try:
            return asyncio.run(asyncio.wait_for(self._group_has_members(), timeout=10))
        except Exception:
            return False

    async def _group_has_members(self) -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.addresses.kafka_bootstrap)
        await admin.start()
        try:
            [response] = await admin.describe_consumer_groups([self.group])
        finally:
            await admin.close()
        # Each group is a tuple: (error_code, group, state, protocol_type, protocol, members).
        _, _, state, _, _, members = response.groups[0]
        return bool(state == "Stable" and members)


class DevApiKey(Step):
    """An API key of the `dev` tenant, kept in .local/dev-api-key and reused while valid."""

    name = "dev-api-key"

    def __init__(self, api: Api) -> None:
        super().__init__(api.layout, api.addresses)
        self.api = api

    @property
    def path(self) -> Path:
        return self.layout.state / "dev-api-key"

    @property
    def address(self) -> str:
        key = self.path.read_text().strip() if self.path.exists() else "-"
        return f"tenant '{DEV_TENANT}': {key}"

    def healthy(self) -> bool:
        if not self.path.exists():
            return False
        request = urllib.request.Request(
            f"{self.api.url}/api/v1/ingestions?limit=1",
            headers={"Authorization": f"Bearer {self.path.read_text().strip()}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def ensure_up(self) -> bool:
        created = not self.healthy()
        if created:
            result = self._run(["autoloader-api", "keys", "create", "--tenant", DEV_TENANT])
            self.path.write_text(result.stdout.strip() + "\n")
            self.path.chmod(0o600)
        # The dev tenant writes to the `default` database and reads the landing bucket, as
        # the README's examples do; grants are idempotent.
        for grant in (["--namespace", "spark_catalog.default"], ["--source", DEV_SOURCE]):
            self._run(["autoloader", "tenants", "grant", "--tenant", DEV_TENANT, *grant])
        return created

    def _run(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        return proc.run(
            [str(self.layout.venv_bin / command[0]), *command[1:]],
            f"running {' '.join(command[:3])} for the {DEV_TENANT} tenant",
            env={**os.environ, **stack_env(self.addresses)},
        )


class SchedulerSync(ConsumerService):
    name = group = "scheduler-sync"
    env_prefix = "AUTOLOADER_SYNC_"
    argv = ("autoloader-sync", "run")

    @property
    def metrics_port(self) -> int:
        return self.addresses.sync_metrics_port


class Discovery(ConsumerService):
    """S3 notifications into files; here also SeaweedFS's filer events into notifications."""

    name = group = "discovery"
    env_prefix = "AUTOLOADER_DISCOVERY_"
    argv = ("autoloader-discovery", "run")

    @property
    def metrics_port(self) -> int:
        return self.addresses.discovery_metrics_port

    def env(self) -> dict[str, str]:
        return {**super().env(), "AUTOLOADER_DISCOVERY_SEAWEEDFS_BRIDGE": "true"}


class ProcessorPool(ConsumerService):
    name = group = "processor"
    env_prefix = "AUTOLOADER_PROCESSOR_"
    argv = ("autoloader-processor", "run")

    @property
    def metrics_port(self) -> int:
        return self.addresses.processor_metrics_port

    def env(self) -> dict[str, str]:
        # Short retry back-off and sweep interval, so a development stack shows failures
        # within seconds; production keeps the defaults of ProcessorSettings.
        return {
            **super().env(),
            "AUTOLOADER_PROCESSOR_RETRY_BASE_SECONDS": "1",
            "AUTOLOADER_PROCESSOR_SWEEP_INTERVAL_SECONDS": "2",
        }
