"""`autoloader-api`: serve the REST API, or check what it depends on."""

from __future__ import annotations

import argparse
import asyncio

import uvicorn

from autoloader_api.app import create_app, dependency_checks
from autoloader_api.settings import ApiSettings
from shared.preflight import print_results, run_checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autoloader-api", description=__doc__)
    parser.add_argument("command", choices=["serve", "check"])
    args = parser.parse_args(argv)
    settings = ApiSettings()
    if args.command == "check":
        return print_results(asyncio.run(run_checks(dependency_checks(settings))))
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    return 0
