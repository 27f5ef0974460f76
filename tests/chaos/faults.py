"""The faults a trial injects into the stack `make up` started: kill -9 of one of Autoloader's
processes or of the Prefect worker (with its flow-run processes), then start it again at once;
or a restart of a piece of infrastructure."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack import proc
from devstack.component import Component
from devstack.components.api import Api, Discovery, ProcessorPool, SchedulerSync
from devstack.components.kafka import Kafka
from devstack.components.postgres import Postgres
from devstack.components.prefect import PrefectServer, PrefectWorker
from devstack.components.spark import SparkConnect
from devstack.layout import Addresses, Layout

KILLED = ("processor", "discovery", "scheduler-sync", "api", "prefect-worker")
RESTARTED = ("spark-connect", "kafka", "postgres", "prefect-server")
FAULTS = tuple(f"kill-9 {name}" for name in KILLED) + tuple(f"restart {n}" for n in RESTARTED)


@dataclass(frozen=True)
class Stack:
    layout: Layout
    addresses: Addresses

    @classmethod
    def discover(cls) -> Stack:
        return cls(Layout.discover(), Addresses())

    def component(self, name: str) -> Component:
        simple: dict[str, Callable[[Layout, Addresses], Component]] = {
            "processor": ProcessorPool,
            "discovery": Discovery,
            "scheduler-sync": SchedulerSync,
            "api": Api,
            "spark-connect": SparkConnect,
            "kafka": Kafka,
            "postgres": Postgres,
            "prefect-server": PrefectServer,
        }
        if name == "prefect-worker":
            return PrefectWorker(PrefectServer(self.layout, self.addresses))
        return simple[name](self.layout, self.addresses)


def inject(stack: Stack, fault: str) -> None:
    """Apply FAULT and bring the component back; returns once it is healthy again."""
    action, name = fault.split(" ", 1)
    component = stack.component(name)
    if action == "kill-9":
        pid = component.pid()
        if pid is None:
            raise RuntimeError(f"{name} is not running: start the stack with `make up`")
        kill_tree(pid)
    else:
        component.stop()
    component.ensure_up()


def kill_tree(root: int) -> None:
    """SIGKILL ROOT and every process descended from it, and wait until they are gone."""
    pids = descendants(root)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(proc.alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} outlived kill -9 by 30 s")
        time.sleep(0.05)


def descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree
