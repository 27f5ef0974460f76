"""Listing a source, a page at a time: S3 through boto3's paginator, or a local directory.

An S3 source is listed with its ingestion's own credentials, session token included, or
anonymously when it has none: never with the service's keys (see shared/s3.py).

Listing is most of discovery's time, so two things keep it fast: the next page is fetched
while the caller records this one (`_read_ahead`, one page ahead, so memory stays bounded),
and source clients parse each key's LastModified with `datetime.fromisoformat` (see
shared/s3.py) rather than botocore's dateutil parser, two thirds of the CPU of a 1,000-key page.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from shared.s3 import source_client
from shared.settings import S3Settings
from shared.spec import S3_PATH, SourceSpec

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")


@dataclass(frozen=True)
class ListedObject:
    path: str
    etag: str
    size: int
    last_modified: datetime


def matches(relative: str, pattern: str) -> bool:
    """Glob on the key below the source path (`*` also crosses `/`), or on its file name."""
    return fnmatch.fnmatchcase(relative, pattern) or fnmatch.fnmatchcase(
        relative.rsplit("/", 1)[-1], pattern
    )


def list_source(
    source: SourceSpec,
    credentials: dict[str, Any] | None,
    s3: S3Settings,
    page_size: int,
) -> Iterator[list[ListedObject]]:
    """The source's matching objects, in pages of at most `page_size` (S3: one page per
    ListObjectsV2 request; pages left empty by the file pattern are skipped)."""
    if source.type == "local":
        yield from _read_ahead(_pages(_walk_local(source), page_size))
    else:
        yield from _read_ahead(_list_s3(source_client(s3, credentials), source, page_size))


def _list_s3(client: S3Client, source: SourceSpec, page_size: int) -> Iterator[list[ListedObject]]:
    match = S3_PATH.match(source.path)
    assert match is not None  # the spec validated the path
    bucket, prefix = match["bucket"], (match["prefix"] or "/").lstrip("/")
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
    ):
        listed = [
            ListedObject(
                path=f"s3://{bucket}/{item['Key']}",
                etag=item["ETag"].strip('"'),
                size=item["Size"],
                last_modified=item["LastModified"],
            )
            for item in page.get("Contents", [])
            if not item["Key"].endswith("/")
            and matches(item["Key"][len(prefix) :], source.file_pattern)
        ]
        if listed:
            yield listed


def _read_ahead(pages: Iterator[T]) -> Generator[T, None, None]:
    """`pages`, fetched one page ahead in a thread of its own: the next S3 request (and its
    parsing) runs while the caller records the page it has. At most one page waits unread. An
    error of the listing is raised here, after the pages before it."""
    fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="listing")
    try:
        ahead = fetcher.submit(next, pages, None)
        while (page := ahead.result()) is not None:
            ahead = fetcher.submit(next, pages, None)
            yield page
    finally:
        # A caller that stops early leaves at most one request to finish in the background.
        fetcher.shutdown(wait=False, cancel_futures=True)


def _walk_local(source: SourceSpec) -> Iterator[ListedObject]:
    root = Path(source.path.removeprefix("file://"))
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            if not matches(relative, source.file_pattern):
                continue
            stat = path.stat()
            yield ListedObject(
                path=path.as_uri(),
                etag=f"{stat.st_mtime_ns:x}-{stat.st_size:x}",
                size=stat.st_size,
                last_modified=datetime.fromtimestamp(stat.st_mtime, UTC),
            )


def _pages(objects: Iterator[ListedObject], size: int) -> Iterator[list[ListedObject]]:
    page: list[ListedObject] = []
    for listed in objects:
        page.append(listed)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page
