"""Fetching a small JSON-lines batch into the processor, instead of having Spark open each file.

Spark opens each file of a batch through S3A: a lookup in a listing job, another on the
driver, then the read, each in JVM tasks. For small files that is most of a batch's time
(500 files of 1 KB: about 4 s of task time, against 0.3 s to fetch them here). So a batch
of uncompressed JSON-lines files that total at most `max_bytes` is fetched here, with the
source's own credentials (anonymous without them, as Spark reads it), by Arrow's S3
filesystem, whose requests run in C++ threads outside the GIL. Each file is split into lines
as Hadoop's line reader splits them, and the lines reach Spark as one local relation in the
batch's plan, of bytes that Spark turns into strings as its text reader does. From there the
batch is read as any other (`json_lines.parse`).

Anything unusual goes to Spark's own read, which says per file what is wrong: a file that
cannot be fetched (gone, access denied, the store away), a key Arrow would not take as it
is (an empty, `.` or `..` segment), a name Spark decompresses by its extension.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from urllib.parse import quote, urlsplit

import pyarrow as pa
from prometheus_client import Counter
from pyarrow import fs

from autoloader_processor import json_lines
from autoloader_processor.reading import (
    CODEC_EXTENSIONS,
    PerCredentials,
    process_scheme_key,
    source_access,
)
from shared.settings import S3Settings
from shared.spec import FormatSpec, S3Credentials

log = logging.getLogger(__name__)

FETCHES = Counter(
    "autoloader_fetched_batches_total",
    "JSON-lines batches fetched into the processor: 'fetched', or 'fell_back' when a file "
    "could not be fetched and Spark read the batch itself",
    ["outcome"],
)
BOM = b"\xef\xbb\xbf"  # Hadoop's line reader drops it at the start of a file
THREADS = 16  # requests in flight for one batch
CHUNK = 1024 * 1024  # read at a time, so that the budget holds whatever a file now holds
FILESYSTEMS = 64  # kept, one per set of source credentials


def spark_name(path: str) -> str:
    """The file's name as Spark's `_metadata.file_path` gives it: percent-encoded, which
    `reading.spark_identity` decodes back to the batch path."""
    return quote(path, safe=":/")


def split_lines(body: bytes) -> list[bytes]:
    """The file's lines as Hadoop's line reader splits them: at `\\n`, `\\r\\n` or `\\r`."""
    return body.removeprefix(BOM).splitlines()


def lines_table(bodies: Mapping[str, bytes], source_column: str) -> pa.Table:
    """Every line of the files as bytes, beside Spark's name for its file."""
    values: list[bytes] = []
    names: list[str] = []
    for path, body in bodies.items():
        lines = split_lines(body)
        values.extend(lines)
        names.extend([spark_name(path)] * len(lines))
    return pa.table(
        {
            "value": pa.array(values, pa.binary()),
            source_column: pa.array(names, pa.string()),
        }
    )


class OneFetch:
    """One batch's fetch, shared by its threads. It holds at most `limit` bytes: a file grown
    since it was found (a 1 KB file replaced by 10 GB) stops it. The first file that fails
    stops the other threads too, so an unreachable store costs one file's retries, not
    every file's."""

    def __init__(self, filesystem: fs.S3FileSystem, limit: int):
        self.filesystem = filesystem
        self.left = limit
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.error: BaseException | None = None  # the first file's failure

    def share(self, paths: Sequence[str]) -> list[bytes]:
        """Each file's bytes, one after the other, unless the fetch stopped."""
        bodies = []
        for path in paths:
            if self.stopped.is_set():
                raise ValueError("another file of the batch could not be fetched")
            try:
                bodies.append(self.body(path))
            except BaseException as error:
                self.error = self.error or error
                self.stopped.set()
                raise
        return bodies

    def body(self, path: str) -> bytes:
        chunks = []
        with self.filesystem.open_input_stream(_object(path) or "") as stream:
            while chunk := stream.read(CHUNK):
                self.take(len(chunk))
                chunks.append(chunk)
        return b"".join(chunks)

    def take(self, size: int) -> None:
        with self.lock:
            self.left -= size
            if self.left < 0:
                raise ValueError("the batch's files hold more bytes than found: Spark reads it")


def _object(path: str) -> str | None:
    """`bucket/key` for Arrow, when it takes the key exactly as it is."""
    if not path.startswith("s3://"):
        return None
    bucket, _, key = path.removeprefix("s3://").partition("/")
    if not bucket or any(part in ("", ".", "..") for part in key.split("/")):
        return None
    return f"{bucket}/{key}"


@dataclass
class Fetcher:
    """Fetches batches of small files; keeps a filesystem per set of source credentials."""

    s3: S3Settings
    max_bytes: int  # a batch is fetched when its files total at most this; 0 never
    _filesystems: PerCredentials[fs.S3FileSystem] = field(
        default_factory=lambda: PerCredentials(FILESYSTEMS)
    )

    def takes(self, fmt: FormatSpec, sizes: Mapping[str, int]) -> bool:
        """Whether a batch of these files, in this format, is fetched here."""
        return (
            json_lines.readable(fmt)
            and 0 < sum(sizes.values()) <= self.max_bytes
            and all(_object(p) and not p.lower().endswith(CODEC_EXTENSIONS) for p in sizes)
        )

    def lines(
        self, paths: Sequence[str], credentials: S3Credentials | None, source_column: str
    ) -> pa.Table | None:
        """The files' lines (`lines_table`), or None when any file cannot be fetched."""
        bodies = self.fetch(paths, credentials)
        return None if bodies is None else lines_table(bodies, source_column)

    def fetch(
        self, paths: Sequence[str], credentials: S3Credentials | None
    ) -> dict[str, bytes] | None:
        """Each file's bytes, or None when any of them cannot be fetched."""
        fetch = OneFetch(self._filesystem(credentials), self.max_bytes)
        # A thread per share of the files, not a future per file: 500 futures cost more of
        # the GIL than the requests themselves.
        shares = [paths[i::THREADS] for i in range(min(THREADS, len(paths)))]
        try:
            with ThreadPoolExecutor(len(shares) or 1) as pool:
                fetched = pool.map(fetch.share, shares)
                bodies = dict(zip(chain(*shares), chain(*fetched), strict=True))
        except (OSError, ValueError, pa.ArrowException) as error:
            FETCHES.labels("fell_back").inc()
            log.info("fetching the batch failed, Spark reads it: %s", fetch.error or error)
            return None
        FETCHES.labels("fetched").inc()
        return bodies

    def _filesystem(self, credentials: S3Credentials | None) -> fs.S3FileSystem:
        key = source_access(credentials, process_scheme_key()).scheme  # a digest
        return self._filesystems.get(key, lambda: self._new(credentials))

    def _new(self, credentials: S3Credentials | None) -> fs.S3FileSystem:
        """Arrow's S3 client for the source's store, with its credentials and nothing else."""
        options: dict[str, object] = {
            "region": (credentials and credentials.aws_region) or self.s3.region,
            "connect_timeout": 5,
            "request_timeout": 30,
            "retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=3),
        }
        if self.s3.endpoint_url:
            endpoint = urlsplit(self.s3.endpoint_url)
            options |= {"endpoint_override": endpoint.netloc, "scheme": endpoint.scheme}
        if credentials is None:
            return fs.S3FileSystem(anonymous=True, **options)
        revealed = credentials.revealed()
        return fs.S3FileSystem(
            access_key=revealed["aws_access_key_id"],
            secret_key=revealed["aws_secret_access_key"],
            session_token=revealed["aws_session_token"],
            **options,
        )
