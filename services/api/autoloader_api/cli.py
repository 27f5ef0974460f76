"""`autoloader-api`: serve the REST API, run the outbox relay alone, manage API keys."""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvicorn

from autoloader_api.app import create_app
from autoloader_api.auth import create_key
from autoloader_api.container import Container
from autoloader_api.routes.operations import dependency_checks
from autoloader_api.settings import ApiSettings
from shared.crypto import new_key
from shared.db import create_engine, session_factory
from shared.logs import configure_logging
from shared.preflight import print_results, run_checks
from shared.uow import UnitOfWork


async def _create_key(settings: ApiSettings, tenant: str) -> str:
    engine = create_engine(settings.database)
    try:
        async with UnitOfWork(session_factory(engine)) as uow:
            return await create_key(uow, tenant)
    finally:
        await engine.dispose()


async def _relay(settings: ApiSettings) -> None:
    container = Container.build(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, container.stop.set)
    try:
        await container.relay.run(container.stop)
    finally:
        await container.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autoloader-api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve the API (and relay the outbox) on host:port")
    commands.add_parser("relay", help="relay the outbox to Kafka, without serving HTTP")
    commands.add_parser("check", help="check the database and Kafka")
    keys = commands.add_parser("keys", help="API keys and the credentials encryption key")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="print a new API key for a tenant")
    create.add_argument("--tenant", required=True, help="tenant name; created if new")
    key_commands.add_parser(
        "generate-encryption-key", help="print a new AUTOLOADER_CREDENTIALS_KEY value"
    )
    args = parser.parse_args(argv)

    if args.command == "keys" and args.keys_command == "generate-encryption-key":
        print(new_key())
        return 0
    settings = ApiSettings()
    if args.command == "check":
        return print_results(asyncio.run(run_checks(dependency_checks(settings))))
    if args.command == "keys":
        print(asyncio.run(_create_key(settings, args.tenant)))
        return 0
    if args.command == "relay":
        asyncio.run(_relay(settings))
        return 0
    configure_logging()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)
    return 0
