"""`autoloader-api`: serve the REST API, run the outbox relay alone, manage API keys."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import uvicorn
from pydantic import ValidationError

from autoloader_api.app import create_app
from autoloader_api.auth import AmbiguousKey, KeyInfo, create_key, find_key, list_keys, revoke_key
from autoloader_api.container import Container
from autoloader_api.settings import ApiSettings
from shared.crypto import new_key
from shared.db import create_engine, session_factory
from shared.local_stack import load_stack_env
from shared.logs import configure_logging
from shared.preflight import Check, checks_for, print_results, run_checks
from shared.service import invalid_settings, reporting_unreachable
from shared.uow import UnitOfWork

PROG = "autoloader-api"
T = TypeVar("T")


def dependency_checks(settings: ApiSettings) -> dict[str, Check]:
    return checks_for(settings, "database", "kafka")


async def _with_uow(settings: ApiSettings, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    engine = create_engine(settings.database)
    try:
        async with UnitOfWork(session_factory(engine)) as uow:
            return await work(uow)
    finally:
        await engine.dispose()


def _print_keys(keys: list[KeyInfo]) -> None:
    print(f"{'ID':<36}  {'PREFIX':<10}  {'TENANT':<24}  {'CREATED':<25}  REVOKED")
    for key in keys:
        created = key.created_at.isoformat(timespec="seconds") if key.created_at else "-"
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "-"
        print(f"{key.id!s:<36}  {key.prefix:<10}  {key.tenant:<24}  {created:<25}  {revoked}")


async def _revoke(uow: UnitOfWork, prefix_or_id: str) -> int:
    try:
        found = await find_key(uow, prefix_or_id)
    except AmbiguousKey as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    if found is None:
        print(f"{PROG}: no API key has the id or prefix {prefix_or_id!r}", file=sys.stderr)
        return 1
    if found.revoked_at is not None:
        print(f"{found.prefix} (tenant {found.tenant}) was already revoked at {found.revoked_at}")
        return 0
    revoked = await revoke_key(uow, found.id)
    assert revoked is not None  # found above; keys are revoked, never deleted
    print(f"revoked {revoked.prefix} (tenant {revoked.tenant}) at {revoked.revoked_at}")
    return 0


def _keys(settings: ApiSettings, args: argparse.Namespace) -> int:
    if args.keys_command == "create":
        print(asyncio.run(_with_uow(settings, lambda uow: create_key(uow, args.tenant))))
        return 0
    if args.keys_command == "list":
        _print_keys(asyncio.run(_with_uow(settings, lambda uow: list_keys(uow, args.tenant))))
        return 0
    return asyncio.run(_with_uow(settings, lambda uow: _revoke(uow, args.key)))


async def _relay(settings: ApiSettings) -> None:
    container = Container.build(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, container.stop.set)
    try:
        await container.relay.run(container.stop)
    finally:
        await container.engine.dispose()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve the API (and relay the outbox) on host:port")
    commands.add_parser("relay", help="relay the outbox to Kafka, without serving HTTP")
    commands.add_parser("check", help="check the database and Kafka")
    keys = commands.add_parser("keys", help="API keys and the credentials encryption key")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="print a new API key for a tenant")
    create.add_argument("--tenant", required=True, help="tenant name; created if new")
    listing = key_commands.add_parser(
        "list", help="list API keys: id, prefix, tenant, created, revoked (never the key)"
    )
    listing.add_argument("--tenant", help="only this tenant's keys")
    revoke = key_commands.add_parser("revoke", help="revoke an API key; its next request gets 401")
    revoke.add_argument("key", metavar="PREFIX_OR_ID", help="the key's id or its prefix (al_…)")
    key_commands.add_parser(
        "generate-encryption-key", help="print a new AUTOLOADER_CREDENTIALS_KEY value"
    )
    return parser


def _settings() -> ApiSettings | None:
    try:
        return ApiSettings()
    except ValidationError as error:  # a message naming the setting, not a traceback
        print(invalid_settings(PROG, error), file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    load_stack_env()
    args = _parser().parse_args(argv)
    if args.command == "keys" and args.keys_command == "generate-encryption-key":
        print(new_key())
        return 0
    settings = _settings()
    if settings is None:
        return 2
    if args.command == "check":
        return print_results(asyncio.run(run_checks(dependency_checks(settings))))
    if args.command == "keys":
        return reporting_unreachable(PROG, lambda: _keys(settings, args))
    if args.command == "relay":
        asyncio.run(_relay(settings))
        return 0
    configure_logging()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)
    return 0
