"""`python -m devstack up|down|status|env`: the native stack behind `make up`.

Components start in dependency order and each waits until it answers real requests.
`up` is idempotent: a healthy component is left running and only checked.
"""

from __future__ import annotations

import argparse
import sys
import time

from devstack import proc
from devstack.component import Step
from devstack.components.api import Api, DevApiKey, Discovery, ProcessorPool, SchedulerSync
from devstack.components.kafka import Kafka
from devstack.components.migrations import Migrations
from devstack.components.postgres import Postgres
from devstack.components.prefect import PrefectServer, PrefectWorker
from devstack.components.seaweedfs import SeaweedFS
from devstack.components.spark import SparkConnect
from devstack.layout import Addresses, Layout
from devstack.stack_env import stack_env, write_env_file


def components(layout: Layout, addresses: Addresses) -> list[Step]:
    postgres = Postgres(layout, addresses)
    prefect = PrefectServer(layout, addresses)
    api = Api(layout, addresses)
    return [
        postgres,
        Migrations(layout, addresses),
        Kafka(layout, addresses),
        SeaweedFS(layout, addresses),
        prefect,
        PrefectWorker(prefect),
        SparkConnect(layout, addresses),
        api,
        DevApiKey(api),
        SchedulerSync(layout, addresses),
        Discovery(layout, addresses),
        ProcessorPool(layout, addresses),
    ]


def up(stack: list[Step], layout: Layout, addresses: Addresses) -> None:
    began = time.monotonic()
    for component in stack:
        t0 = time.monotonic()
        _progress(f"  {component.name:<15} installing…")
        component.install()
        _progress(f"  {component.name:<15} starting…  ")
        started = component.ensure_up()
        verb = "started" if started else "already up"
        took = time.monotonic() - t0
        print(f"  {component.name:<15} {verb:<11} {component.address:<52} {took:6.1f}s")
    write_env_file(layout, addresses)
    print(f"stack up in {time.monotonic() - began:.1f}s; addresses in {layout.env_file}")


def _progress(line: str) -> None:
    """Overwritable progress on a terminal; nothing in a log, where it would be noise."""
    if sys.stdout.isatty():
        print(line, end="\r", flush=True)


def down(stack: list[Step], addresses: Addresses) -> None:
    for component in reversed(stack):
        stopped = component.stop()
        print(f"  {component.name:<15} {'stopped' if stopped else 'not running'}")
    still_open = [port for port in addresses.ports() if proc.port_open(addresses.host, port)]
    if still_open:
        raise proc.StackError(
            f"ports {still_open} still answer: a process this stack did not start holds them "
            "(see `ss -ltnp`)"
        )


def status(stack: list[Step]) -> int:
    unhealthy = 0
    for component in stack:
        healthy = component.healthy()
        unhealthy += not healthy
        pid = component.pid()
        state = "healthy" if healthy else "DOWN"
        print(f"  {component.name:<15} {state:<8} {component.address:<52} pid {pid or '-'}")
    return 1 if unhealthy else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    args = parser.parse_args(argv)
    layout = Layout.discover()
    addresses = Addresses()
    layout.make_dirs()
    stack = components(layout, addresses)
    try:
        if args.command == "up":
            up(stack, layout, addresses)
        elif args.command == "down":
            down(stack, addresses)
        elif args.command == "status":
            return status(stack)
        else:
            for key, value in stack_env(addresses).items():
                print(f"export {key}={value}")
    except proc.StackError as error:
        print(f"\nmake {args.command} failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
