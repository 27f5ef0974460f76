"""The shapes of the stack's parts: a Step is checked and brought up; a Component is a
Step that runs as a background process."""

from __future__ import annotations

from abc import ABC, abstractmethod

from devstack import proc
from devstack.layout import Addresses, Layout


class Step(ABC):
    name: str

    def __init__(self, layout: Layout, addresses: Addresses) -> None:
        self.layout = layout
        self.addresses = addresses

    @property
    @abstractmethod
    def address(self) -> str:
        """Where clients reach it, or what it is."""

    def install(self) -> None:  # noqa: B027 - most parts have nothing to install
        """Fetch what is missing into the download cache. Cheap when already there."""

    @abstractmethod
    def healthy(self) -> bool:
        """True when the part answers real requests."""

    @abstractmethod
    def ensure_up(self) -> bool:
        """Bring the part up unless it is healthy already. True if anything was done."""

    def stop(self) -> bool:
        return False

    def pid(self) -> int | None:
        return None


class Component(Step):
    start_timeout: float = 120.0

    @abstractmethod
    def start(self) -> int:
        """Launch the component in the background; return the pid to watch."""

    def prepare(self) -> None:
        """Idempotent set-up once healthy: databases, topics, buckets, work pools."""

    def stop(self) -> bool:
        return proc.stop(self.layout, self.name)

    def pid(self) -> int | None:
        return proc.read_pid(self.layout, self.name)

    def ensure_up(self) -> bool:
        if self.healthy():
            self.prepare()
            return False
        if self.pid() is not None:
            self.stop()
        pid = self.start()
        proc.wait_until(
            self.healthy, self.name, self.start_timeout, log=self.layout.log(self.name), pid=pid
        )
        self.prepare()
        return True
