"""Which of a batch's folders Spark should list instead of looking up their files one by one.

Named one by one, each file costs S3A a LIST and a HEAD in Spark's lookup job and one more
HEAD on the driver; listing its folder costs one LIST request per 1,000 keys of everything in
it. Neither the processor nor file state knows what else a folder holds, so before a folder
is read whole it is listed here, with the source's own credentials, and read whole only when:

- at least `files_per_page` of the batch's files are in it for each page of 1,000 keys the
  folder takes to list (0 turns folder reads off), and
- it has no subfolders: Spark would list each one (`recursiveFileLookup`), at a cost this
  listing did not see.

The listing stops as soon as either rule fails, so it never costs more than the pages the
rule allows, plus one, and a folder that did not fit is not listed again for the next
REMEMBER_SECONDS unless a batch allows it more pages. A folder that fit is believed to for
FIT_SECONDS, so the batches of one backlog list it once (in Python, a page of 1,000 keys
costs about 50 ms of the processor's CPU); a batch in that time reads it with whatever it
gained since, which costs Spark's listing more but loses nothing. Any error (no
`s3:ListBucket`, for one) means the files are read one by one, as before. The reader filters
a folder's rows down to the batch's own files, so a folder's other objects are listed and
never read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from autoloader_processor.reading import PerCredentials, process_scheme_key, source_access
from shared.s3 import source_client
from shared.settings import S3Settings
from shared.spec import S3Credentials

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

PAGE = 1000  # keys in one LIST response, S3's maximum
CLIENTS = 64  # source clients kept, one per set of credentials
REMEMBER_SECONDS = 600.0  # how long a folder found too big is not listed again
REMEMBERED = 4096  # folders found too big, and folders found to fit, kept
FIT_SECONDS = 30.0  # how long a folder found to fit is believed to, for as many pages
# The listing is an optimisation: during an S3 outage it gives up within about 30 s and
# leaves the outage to the batch's own read, instead of holding the batch for minutes.
LISTING_CONFIG = Config(
    connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 2}
)


def by_folder(paths: Sequence[str]) -> dict[str, list[str]]:
    """The batch's files by the folder they sit in (`s3://bucket/a/b/`). Only `s3://` paths,
    the form file state keeps, have one here: files at a bucket's root and paths in any other
    form are looked up one by one."""
    folders: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        rest = path.removeprefix("s3://")
        if rest != path and "/" in rest and rest.index("/") < rest.rindex("/"):
            folders[f"s3://{rest[: rest.rindex('/') + 1]}"].append(path)
    return dict(folders)


def pages_to_list(client: S3Client, folder: str, pages: int, page_size: int = PAGE) -> int | None:
    """The LIST requests `folder` takes, or None when it takes more than `pages` or has
    subfolders."""
    bucket, _, prefix = folder.removeprefix("s3://").partition("/")
    paginator = client.get_paginator("list_objects_v2")
    listing = paginator.paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": page_size}
    )
    seen = 0
    for seen, page in enumerate(listing, start=1):
        if seen > pages or page.get("CommonPrefixes"):
            return None
    return seen


@dataclass
class FolderSizer:
    """Picks a batch's folders to read whole; keeps a client per set of source credentials."""

    s3: S3Settings
    files_per_page: int
    _clients: PerCredentials[S3Client] = field(default_factory=lambda: PerCredentials(CLIENTS))
    # (credentials, folder) -> (pages it did not fit in, until when that is believed)
    _too_big: OrderedDict[tuple[str, str], tuple[int, float]] = field(default_factory=OrderedDict)
    # (credentials, folder) -> (pages it took, until when that is believed)
    _fit: OrderedDict[tuple[str, str], tuple[int, float]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def folders(self, paths: Sequence[str], credentials: S3Credentials | None) -> list[str]:
        """The folders of `paths` to read whole, listed with `credentials` (the source's)."""
        if self.files_per_page <= 0:
            return []
        chosen = []
        for folder, files in by_folder(paths).items():
            pages = len(files) // self.files_per_page
            if pages and self._small_enough(folder, pages, credentials):
                chosen.append(folder)
        return chosen

    def _small_enough(self, folder: str, pages: int, credentials: S3Credentials | None) -> bool:
        """Listed at most once per REMEMBER_SECONDS while it does not fit (a folder of years
        of files would otherwise cost every batch the pages it is allowed, plus one), and
        once per FIT_SECONDS while it fits."""
        revealed = credentials.revealed() if credentials else None
        key = (source_access(credentials, process_scheme_key()).scheme, folder)  # a digest
        now = time.monotonic()
        with self._lock:
            tried, too_big_until = self._too_big.get(key, (0, 0.0))
            took, fit_until = self._fit.get(key, (0, 0.0))
        if pages <= tried and now < too_big_until:
            return False
        if took and took <= pages and now < fit_until:
            return True
        try:
            took = pages_to_list(self._client(key[0], revealed), folder, pages) or 0
        except (BotoCoreError, ClientError) as error:
            log.info("folder %s is read file by file: listing it failed (%s)", folder, error)
            took = 0
        if took:
            self._remember(self._fit, key, (took, now + FIT_SECONDS))
        else:
            self._remember(self._too_big, key, (pages, now + REMEMBER_SECONDS))
        return bool(took)

    def _remember(
        self,
        verdicts: OrderedDict[tuple[str, str], tuple[int, float]],
        key: tuple[str, str],
        verdict: tuple[int, float],
    ) -> None:
        with self._lock:
            verdicts[key] = verdict
            verdicts.move_to_end(key)
            while len(verdicts) > REMEMBERED:
                verdicts.popitem(last=False)

    def _client(self, key: str, revealed: dict[str, str | None] | None) -> S3Client:
        return self._clients.get(key, lambda: source_client(self.s3, revealed, LISTING_CONFIG))
