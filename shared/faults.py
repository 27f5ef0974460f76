"""Fault injection for crash tests: a service configured with a crash point stops dead there,
so a test can kill -9 it at exactly the moment a claim about crash safety is about."""

from __future__ import annotations

import sys
import time


def halt(point: str) -> None:
    """Announce the point on stderr, then hang until killed."""
    print(f"AUTOLOADER-CRASH-POINT {point}", file=sys.stderr, flush=True)
    while True:
        time.sleep(60)
