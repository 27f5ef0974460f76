"""Prefect server backed by PostgreSQL, the `autoloader` process work pool, and a worker."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from devstack import proc
from devstack.component import Component
from devstack.layout import WORK_POOL, WORK_QUEUES
from devstack.stack_env import stack_env


class PrefectServer(Component):
    name = "prefect-server"
    start_timeout = 180.0

    @property
    def address(self) -> str:
        return f"http://{self.addresses.host}:{self.addresses.prefect_port}"

    def env(self) -> dict[str, str]:
        a = self.addresses
        return {
            "PREFECT_HOME": str(self.layout.data / "prefect"),
            "PREFECT_API_URL": a.prefect_api_url,
            "PREFECT_API_DATABASE_CONNECTION_URL": a.prefect_database_url,
            "PREFECT_SERVER_API_HOST": a.host,
            "PREFECT_SERVER_API_PORT": str(a.prefect_port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "INFO",
            # Prefect's own JSON formatter on its console handlers: the server's, the
            # worker's and every flow run's lines are JSON, like the services'.
            "PREFECT_LOGGING_HANDLERS_CONSOLE_FORMATTER": "json",
            "PREFECT_LOGGING_HANDLERS_DEBUG_FORMATTER": "json",
        }

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.addresses.prefect_api_url}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"null")

    def healthy(self) -> bool:
        try:
            return self.api("GET", "/health") is True
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def start(self) -> int:
        argv = [str(self.layout.venv_bin / "prefect"), "server", "start"]
        return proc.spawn(self.layout, self.name, argv, env=self.env())

    def prepare(self) -> None:
        try:
            self.api("GET", f"/work_pools/{WORK_POOL}")
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
            self.api("POST", "/work_pools/", {"name": WORK_POOL, "type": "process"})
        existing = {
            queue["name"]
            for queue in self.api("POST", f"/work_pools/{WORK_POOL}/queues/filter", {})
        }
        for queue in WORK_QUEUES:
            if queue not in existing:
                self.api("POST", f"/work_pools/{WORK_POOL}/queues", {"name": queue})


class PrefectWorker(Component):
    """A process worker polling every queue of the `autoloader` pool."""

    name = "prefect-worker"
    start_timeout = 90.0

    def __init__(self, server: PrefectServer) -> None:
        super().__init__(server.layout, server.addresses)
        self.server = server

    @property
    def address(self) -> str:
        return f"work pool '{WORK_POOL}'"

    def ensure_up(self) -> bool:
        # Its fork server holds the flow's code as imported when it started: restarted like the
        # project's own services, so that `make up` after a change runs the new code.
        self.stop()
        return super().ensure_up()

    def healthy(self) -> bool:
        if self.pid() is None or not self.server.healthy():
            return False
        try:
            workers = self.server.api("POST", f"/work_pools/{WORK_POOL}/workers/filter", {})
            pool = self.server.api("GET", f"/work_pools/{WORK_POOL}")
        except (OSError, urllib.error.URLError, ValueError):
            return False
        online = [worker for worker in workers if worker.get("status") == "ONLINE"]
        return bool(online) and pool.get("status") == "READY"

    def start(self) -> int:
        # The worker starts under the flow-run fork server, which keeps Prefect and the flow
        # imported for every flow run (autoloader_discovery/forkserver.py).
        argv = [
            str(self.layout.venv_bin / "python"),
            "-m",
            "autoloader_discovery.forkserver",
            str(self.layout.venv_bin / "prefect"),
            "worker",
            "start",
            "--pool",
            WORK_POOL,
            "--type",
            "process",
            "--name",
            "autoloader-local",
        ]
        # Flow runs inherit the worker's environment: they reach the stack through it.
        env = {
            **stack_env(self.addresses),
            **self.server.env(),
            # Poll for new flow runs twice a second (Prefect's default is every 10 s): a run
            # asked for through the API or an upstream command waits 0.25 s on average for the
            # worker. Each poll also rewrites `last_polled` on the pool's deployments, which a
            # single developer's stack affords (docs/performance.md).
            "PREFECT_WORKER_QUERY_SECONDS": "0.5",
        }
        return proc.spawn(self.layout, self.name, argv, env=env)
