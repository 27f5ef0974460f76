"""`python -m tests.faults.processor_crash POINT [autoloader-processor args]`: the processor,
stopping dead at POINT of its first batch commit so a test can kill -9 it exactly there.

- before-publish: the batch is staged in Iceberg and the claim checked, not yet published;
- after-publish: the batch is published, its files not yet marked;
- pause-before-publish: as before-publish, but the process stops itself (SIGSTOP) there and,
  once continued (SIGCONT), goes on to publish, as a paused process would, and announces
  what the publish did (`resumed: publish returned None`: refused, or the error it raised).

The point is announced on stderr as `AUTOLOADER-CRASH-POINT <point>`; the process then hangs
until it is killed, or for a pause, stops. Nothing of this lives in the service: the patch is
made here.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

from autoloader_processor import cli
from autoloader_processor.iceberg import IcebergTables

POINTS = ("before-publish", "after-publish", "pause-before-publish")


def announce(line: str) -> None:
    print(f"AUTOLOADER-CRASH-POINT {line}", file=sys.stderr, flush=True)


def halt(point: str) -> None:
    announce(point)
    if point.startswith("pause-"):
        # Sent to this very thread: a process-wide SIGSTOP may be taken by another thread,
        # and this one would run on into the publish before the whole process stops.
        signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
        return
    while True:
        time.sleep(60)


def install(point: str) -> None:
    publish = IcebergTables.publish

    def crashing_publish(self: IcebergTables, table: str, snapshot_id: int) -> Any:
        if point.endswith("before-publish"):
            announce(f"staged snapshot {snapshot_id} of {table}")
            halt(point)
            if point.startswith("pause-"):
                return resumed_publish(self, table, snapshot_id)
        published = publish(self, table, snapshot_id)
        halt(point)
        return published

    def resumed_publish(self: IcebergTables, table: str, snapshot_id: int) -> Any:
        try:
            published = publish(self, table, snapshot_id)
        except Exception as error:
            announce(f"resumed: publish raised {type(error).__name__}: {error}")
            raise
        announce(f"resumed: publish returned {published}")
        return published

    IcebergTables.publish = crashing_publish  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in POINTS:
        print(f"usage: python -m tests.faults.processor_crash {{{','.join(POINTS)}}} run")
        return 2
    install(argv[0])
    return cli.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
