"""Running an action every so often until told to stop, surviving its failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


async def every(
    interval: float, stop: asyncio.Event, action: Callable[[], Awaitable[Any]], what: str
) -> None:
    """Await ``action`` every ``interval`` seconds until ``stop`` is set; log its failures."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            try:
                await action()
            except Exception as error:
                log.warning("%s failed: %s: %s", what, type(error).__name__, error)
