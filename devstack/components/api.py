"""The Autoloader REST API, started from the project's own console script."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from devstack import proc
from devstack.component import Component
from devstack.stack_env import stack_env


class Api(Component):
    name = "api"
    start_timeout = 60.0

    @property
    def address(self) -> str:
        return f"http://{self.addresses.host}:{self.addresses.api_port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.address}/health", timeout=15) as response:
                return bool(json.loads(response.read())["status"] == "healthy")
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            return False

    def start(self) -> int:
        env = {
            **stack_env(self.addresses),
            "AUTOLOADER_API_HOST": self.addresses.host,
            "AUTOLOADER_API_PORT": str(self.addresses.api_port),
        }
        argv = [str(self.layout.venv_bin / "autoloader-api"), "serve"]
        return proc.spawn(self.layout, self.name, argv, env=env)
