"""Running a consumer service: its broker until SIGINT or SIGTERM, and its `run` and `check`
commands."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from faststream.kafka import KafkaBroker
from httpx import TransportError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from shared.logs import configure_logging
from shared.metrics import serve_metrics
from shared.preflight import Check, print_results, run_checks

S = TypeVar("S")
Background = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def serve(
    broker: KafkaBroker, *background: Background, metrics: tuple[str, int] = ("", 0)
) -> None:
    """Consume until SIGINT or SIGTERM, with background tasks that end when the event they
    are given is set, and the process's metrics served at ``metrics`` (host, port; port 0
    serves none); then stop cleanly, leaving the consumer groups."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stop_metrics = serve_metrics(*metrics)
    await broker.start()
    tasks = [asyncio.create_task(task(stop)) for task in background]
    try:
        await stop.wait()
    finally:
        await asyncio.gather(*tasks)
        await broker.stop()
        stop_metrics()


def invalid_settings(prog: str, error: ValidationError) -> str:
    """What a service prints when its settings do not validate: one line per problem, naming
    the setting, and never the value given (it may be a secret)."""
    lines = [f"{prog}: invalid settings:"]
    for problem in error.errors(include_url=False, include_input=False):
        message = problem["msg"].removeprefix("Value error, ")
        where = ".".join(str(part) for part in problem["loc"])
        lines.append(f"  {error.title}{'.' + where if where else ''}: {message}")
    lines.append(
        "Set the AUTOLOADER_* environment variables (docs/configuration.md). For the local "
        'stack, run `make up` in the checkout, or `eval "$(make env)"` in this shell.'
    )
    return "\n".join(lines)


def reporting_unreachable(prog: str, command: Callable[[], int]) -> int:
    """Run a command line's command; a component it cannot reach ends it with one line that
    says which error and what to check, not a traceback."""
    try:
        return command()
    except (OSError, DBAPIError, KafkaConnectionError, KafkaTimeoutError, TransportError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(
            f"{prog}: could not reach a component it needs: {type(error).__name__}: {detail}\n"
            "  Check its address (AUTOLOADER_DATABASE_URL, AUTOLOADER_KAFKA_BOOTSTRAP_SERVERS, "
            "PREFECT_API_URL, docs/configuration.md) and that it is up (`make status` for the "
            "local stack).",
            file=sys.stderr,
        )
        return 3


def run_or_check(
    prog: str,
    doc: str | None,
    settings: Callable[[], S],
    checks: Callable[[S], dict[str, Check]],
    run: Callable[[S], Coroutine[Any, Any, None]],
    argv: list[str] | None,
) -> int:
    """The `run | check` command line of a consumer service."""
    parser = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=["run", "check"])
    args = parser.parse_args(argv)
    configure_logging()
    try:
        loaded = settings()
    except ValidationError as error:
        print(invalid_settings(prog, error), file=sys.stderr)
        return 2
    if args.command == "check":
        return print_results(asyncio.run(run_checks(checks(loaded))))
    asyncio.run(run(loaded))
    return 0
