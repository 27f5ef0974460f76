"""`python -m tests.chaos --trials N [--seed S] [--faults "kill-9 processor,restart kafka"]`

Randomized fault trials on the stack `make up` started (`make chaos TRIALS=N`). Each trial
starts a run of 36 or 120 small files, injects one fault at a random moment in its first
seconds and checks that every row landed once, that file_state agrees with the table, and that
the run ended `success` within the limit. One line per trial, then `N/N exact, max recovery S s`.

It stops and kills shared components, so it holds /tmp/autoloader-stack.lock exclusively during
each trial: do not wrap it in `flock`.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from shared.s3 import s3_client
from shared.settings import DatabaseSettings, S3Settings, SparkSettings
from tests.chaos.faults import FAULTS, Stack
from tests.chaos.trials import Clients, Result, describe, plans, run_trial

STACK_LOCK = "/tmp/autoloader-stack.lock"


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("--trials", type=int, default=10, help="how many trials (default 10)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="replays a sequence")
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help=f"comma-separated, of: {', '.join(FAULTS)}"
    )
    parser.add_argument("--in-turn", action="store_true", help="each fault in turn, not at random")
    parser.add_argument("--max-seconds", type=float, default=90.0, help="limit per run (90)")
    parser.add_argument("--max-delay", type=float, default=8.0, help="latest fault, s (8)")
    options = parser.parse_args(argv)
    unknown = set(options.faults.split(",")) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; choose from: {', '.join(FAULTS)}")
    return options


@asynccontextmanager
async def clients() -> AsyncIterator[Clients]:
    key_file = Stack.discover().layout.state / "dev-api-key"
    if not key_file.exists():
        sys.exit(f"no API key at {key_file}: start the stack with `make up`")
    headers = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
    base = os.environ.get("AUTOLOADER_API_URL", "http://127.0.0.1:8000")
    engine = create_async_engine(DatabaseSettings().url.get_secret_value(), pool_pre_ping=True)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as api:
        try:
            yield Clients(api, s3_client(S3Settings()), engine, SparkSettings().remote)
        finally:
            await engine.dispose()


async def trials(options: argparse.Namespace) -> list[Result]:
    faults = options.faults.split(",")
    chosen = plans(options.trials, options.seed, faults, options.max_delay, options.in_turn)
    print(f"{len(chosen)} trials, seed {options.seed}", flush=True)
    results = []
    async with clients() as connected:
        for plan in chosen:
            async with stack_to_itself():
                result = await run_trial(plan, connected, Stack.discover(), options.max_seconds)
            print(describe(result, len(chosen)), flush=True)
            results.append(result)
    return results


@asynccontextmanager
async def stack_to_itself() -> AsyncIterator[None]:
    """The stack lock, exclusively for one trial: tests waiting for the stack run in between."""
    fd = os.open(STACK_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def main(argv: list[str] | None = None) -> int:
    options = arguments(argv)
    results = asyncio.run(trials(options))
    exact = sum(r.exact for r in results)
    slowest = max((r.seconds or 0.0 for r in results), default=0.0)
    print(f"{exact}/{len(results)} exact, max recovery {slowest:.1f} s")
    return 0 if exact == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
