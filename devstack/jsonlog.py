"""Copy a component's output into its log as JSON lines, one object a line.

`proc.spawn` starts one beside each component of the local stack, in the component's process
group, reading the component's stdout and stderr: a line that is already a JSON object (the
project's own services) is copied as it is; any other line (Kafka's log4j, PostgreSQL,
SeaweedFS, Spark, Prefect's banners) becomes {"time", "level", "logger", "message"}, with the
level read from the line when it names one. It ignores SIGTERM and ends when the component's
output does, so a component's last words before it stops are kept.

Usage: python jsonlog.py NAME LOGFILE  (reads standard input)
"""

from __future__ import annotations

import json
import re
import signal
import sys
from datetime import UTC, datetime
from typing import IO

LEVEL = re.compile(
    r"\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|FATAL|CRITICAL|PANIC|LOG)\b|^([IWEF])\d{4} "
)
GLOG = {"I": "INFO", "W": "WARNING", "E": "ERROR", "F": "FATAL"}
NAMES = {"WARN": "WARNING", "LOG": "INFO", "NOTICE": "INFO", "TRACE": "DEBUG", "PANIC": "FATAL"}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def as_json(name: str, raw: bytes) -> str | None:
    """The JSON line for one line of output; None for a blank one."""
    text = ANSI.sub("", raw.decode("utf-8", errors="replace")).rstrip()
    if not text.strip():
        return None
    if text.startswith("{"):
        try:
            if isinstance(json.loads(text), dict):
                return text
        except ValueError:
            pass
    line = {
        "time": datetime.now(UTC).isoformat(),
        "level": level_of(text),
        "logger": name,
        "message": text,
    }
    return json.dumps(line, ensure_ascii=False)


def level_of(text: str) -> str:
    found = LEVEL.search(text[:200])
    if found is None:
        return "INFO"
    if found.group(2):
        return GLOG[found.group(2)]
    return NAMES.get(found.group(1), found.group(1))


def relay(name: str, source: IO[bytes], log: IO[str]) -> None:
    for raw in source:
        line = as_json(name, raw)
        if line is not None:
            log.write(line + "\n")
            log.flush()


def main() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stop when the component's output ends
    name, path = sys.argv[1], sys.argv[2]
    with open(path, "a", encoding="utf-8") as log:
        relay(name, sys.stdin.buffer, log)


if __name__ == "__main__":
    main()
