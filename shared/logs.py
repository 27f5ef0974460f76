"""Structured logs: one JSON object a line, carrying ingestion and run ids where known.

Pass ids with `extra={"ingestion_id": ..., "run_id": ...}`; they become fields of the line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

CONTEXT_FIELDS = ("ingestion_id", "run_id", "batch_id", "event_type", "tenant_id")

# Libraries that log every retry of a lost connection: aiokafka writes several ERROR lines a
# second for each broker while Kafka is down. One line per message kind per window is enough.
REPEATING_LOGGERS = ("aiokafka",)
REPEAT_WINDOW_SECONDS = 60.0


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if hasattr(record, "suppressed"):
            line["suppressed"] = record.suppressed
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


class RepeatFilter(logging.Filter):
    """Pass a repeating library's message once per window, with how many were dropped since.

    Lines are alike when they come from one logger with one format string, whatever the
    arguments (the broker, the error), so an outage logs once a minute, not once a retry.
    """

    def __init__(
        self,
        prefixes: tuple[str, ...] = REPEATING_LOGGERS,
        window: float = REPEAT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._prefixes = prefixes
        self._window = window
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefixes):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        shown_at, dropped = self._seen.get(key, (-self._window, 0))
        if now - shown_at < self._window:
            self._seen[key] = (shown_at, dropped + 1)
            return False
        self._seen[key] = (now, 0)
        if dropped:
            record.suppressed = dropped
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """Send every log line to stderr as JSON; called once by each service's entry point."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # a library's warning is a JSON line too
    sys.excepthook = _log_uncaught


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    """An exception that ends the process is a JSON line too, not a bare traceback."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    logging.getLogger("autoloader").critical(
        "the process stopped: %s: %s", kind.__name__, error, exc_info=(kind, error, traceback)
    )
