"""The local stack's settings, for console scripts run from a checkout after `make up`."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import load_dotenv

# Written by `make up` in the checkout this package is installed from (editable install).
STACK_ENV = Path(__file__).resolve().parent.parent / ".local" / "stack.env"


def load_stack_env(path: Path = STACK_ENV) -> bool:
    """In a shell that sets no AUTOLOADER_* variable, take the checkout's stack file: a new
    shell after `make up` just works. A shell that sets any is configured on purpose and is
    left alone, as is an installed image, which has no such file."""
    if any(name.startswith("AUTOLOADER_") for name in os.environ) or not path.is_file():
        return False
    load_dotenv(path, override=False)
    return True
