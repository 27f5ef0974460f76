"""`autoloader commands`: what an operator hands a producer of upstream commands.

  autoloader commands signing-key --tenant orders-team

prints the tenant's key for signing commands (hex), derived from
AUTOLOADER_COMMANDS_SIGNING_SECRET: run it with the secret scheduler-sync has. Give the key to
that tenant's producers only; it signs commands for that tenant and no other.
"""

from __future__ import annotations

import argparse
import sys

from shared.command_signing import tenant_key
from shared.settings import CommandSettings


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "commands",
        help="signing keys for upstream commands",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["signing-key"])
    parser.add_argument("--tenant", required=True, help="tenant name")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    secret = CommandSettings().signing_secret
    if secret is None or not secret.get_secret_value():
        print(
            "autoloader commands: AUTOLOADER_COMMANDS_SIGNING_SECRET is not set; set it to the "
            "secret scheduler-sync has",
            file=sys.stderr,
        )
        return 2
    print(tenant_key(secret.get_secret_value(), args.tenant).hex())
    return 0
