"""`python -m tests.faults.discovery_crash POINT [autoloader-discovery args]`: the discovery
consumer, stopping dead at POINT so a test can kill -9 it exactly there.

- after-record: the files of a notification are recorded in `file_state`, their event not
  yet published to `autoloader.files`.

The point is announced on stderr as `AUTOLOADER-CRASH-POINT <point>`; the process then hangs
until it is killed. Nothing of this lives in the service: the patch is made here.
"""

from __future__ import annotations

import sys
import time

from autoloader_discovery import cli
from autoloader_discovery.consumer import NotificationHandler
from shared.events import FilesDiscovered
from shared.s3_events import S3EventRecord

POINTS = ("after-record",)


def halt(point: str) -> None:
    print(f"AUTOLOADER-CRASH-POINT {point}", file=sys.stderr, flush=True)
    while True:
        time.sleep(60)


def install(point: str) -> None:
    record = NotificationHandler._record

    async def crashing_record(
        self: NotificationHandler, records: list[S3EventRecord]
    ) -> list[FilesDiscovered]:
        events = await record(self, records)
        if events:  # committed: the files are in file_state, nothing is published yet
            halt(point)
        return events

    NotificationHandler._record = crashing_record  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in POINTS:
        print(f"usage: python -m tests.faults.discovery_crash {{{','.join(POINTS)}}} run")
        return 2
    install(argv[0])
    return cli.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
